"""build.py: cached builds, and a clear StrictModeUnavailable when something is missing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bank.kit.embedded import pg_bin
from bank.kit.strict import build
from bank.kit.strict.build import (
    StrictModeUnavailable,
    build_extension,
    server_settings,
    session_options,
)


def _fake_pg_config(tmp_path: Path, version: str, include: Path) -> str:
    script = tmp_path / "pg_config"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version) echo "PostgreSQL {version}";; '
        f'--includedir-server) echo "{include}";; esac\n'
    )
    script.chmod(0o755)
    return str(script)


def test_build_is_cached_and_readable_by_others(tmp_path):
    first = build_extension(pg_bin("pg_config"), tmp_path)
    mtime = first.stat().st_mtime_ns
    again = build_extension(pg_bin("pg_config"), tmp_path)
    assert again == first and again.stat().st_mtime_ns == mtime  # not rebuilt
    assert first.stat().st_mode & (stat.S_IROTH | stat.S_IXOTH) == stat.S_IROTH | stat.S_IXOTH
    assert first.name.startswith("dsql_strict-pg18-")


def test_a_new_server_version_is_a_new_build(tmp_path):
    real = Path(build._pg_config(pg_bin("pg_config"), "--includedir-server"))
    a = build_extension(_fake_pg_config(tmp_path, "18.6", real), tmp_path / "out")
    b = build_extension(_fake_pg_config(tmp_path, "18.7", real), tmp_path / "out")
    assert a != b and a.is_file() and b.is_file()


def test_missing_server_headers_say_what_to_install(tmp_path):
    fake = _fake_pg_config(tmp_path, "15.20", tmp_path / "nowhere")
    with pytest.raises(StrictModeUnavailable, match="postgresql-server-dev-15"):
        build_extension(fake, tmp_path / "out")


def test_no_compiler_says_what_to_install(tmp_path, monkeypatch):
    pg_config = pg_bin("pg_config")
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    monkeypatch.setattr(build.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StrictModeUnavailable, match="ziglang"):
        build_extension(pg_config, tmp_path)


def test_settings_name_the_library_by_absolute_path(tmp_path):
    so = tmp_path / "x y" / "dsql_strict.so"
    settings = server_settings(so)
    assert settings["shared_preload_libraries"] == str(so.resolve())
    assert settings["dsql_strict.enabled"] == "on" and settings["dsql_strict.row_limit"] == "3000"
    assert session_options(so) == f"-c session_preload_libraries={tmp_path}/x\\ y/dsql_strict.so"


def test_a_folder_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # like a folder another user made in /tmp for everyone
    with pytest.raises(StrictModeUnavailable, match="another OS user"):
        build_extension(pg_bin("pg_config"), shared)
    assert list(shared.iterdir()) == []  # nothing built there, nothing loaded from there
