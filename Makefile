# Top-level Makefile of the bank project.
#
# AWS SAM (template.yaml): every function has `CodeUri: .` and
# `Metadata: BuildMethod: makefile`, so `sam build` runs
# `make build-<LogicalId>` here with ARTIFACTS_DIR set. The artifact holds the
# application, its four packages (APPLICATION), and nothing of the developer kit
# (bank/kit); MigrateFunction also gets the alembic/ folder (env.py and the
# revisions) that it runs at deploy time.
# Third-party libraries come from DependenciesLayer (layer/Makefile).
# samconfig.toml sets build_in_source so that SAM does not copy the whole
# repository (.venv included) to a scratch folder first.

SAM_FUNCTIONS := Ch01Function Ch03Function Ch04Function Ch05Function Ch06Function Ch07Function MigrateFunction
# The application: what a Lambda function runs (tests/unit/test_architecture.py checks that
# it never imports the kit).
APPLICATION := bank/__init__.py bank/domain bank/services bank/adapters bank/handlers
# What each artifact holds besides bank/.
EXTRA :=
build-MigrateFunction: EXTRA := alembic

.PHONY: build sam-check $(addprefix build-,$(SAM_FUNCTIONS))

# The build of the Lambda artifacts: sam build with a Python 3.13 for the layer's .pyc,
# the SAM CLI in .venv-sam/ (installed the first time), the sizes printed.
build:
	bash .ci/sam-build

# Offline check of the SAM side: sam validate --lint, sam build, artifact
# contents, imports and a DSQL token on Python 3.13. Installs the SAM CLI in
# .venv-sam/ (never in the app's .venv).
sam-check:
	bash .ci/sam-check

$(addprefix build-,$(SAM_FUNCTIONS)):
	test -n "$(ARTIFACTS_DIR)"
	test -d bank/handlers
	rm -rf "$(ARTIFACTS_DIR)/bank" "$(ARTIFACTS_DIR)/alembic"
	tar -cf - --exclude=__pycache__ --exclude='*.pyc' $(APPLICATION) $(EXTRA) \
		| tar -xf - -C "$(ARTIFACTS_DIR)"
