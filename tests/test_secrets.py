"""Secrets generated into var/ appear whole or not at all, are shared by processes that start
together, and a key set too short in the environment stops the process with the reason."""

import os
import stat
import subprocess
import sys

import pytest

NAMES = ("SECRET_KEY", "API_KEY_PEPPER", "CREDENTIALS_KEY")
PRINT_SECRETS = "import gateway.settings as s; print(s.SECRET_KEY, s.API_KEY_PEPPER, s.CREDENTIALS_KEY)"


def environment(var_dir, **variables) -> dict:
    inherited = {name: value for name, value in os.environ.items() if name not in NAMES}
    return {**inherited, "TOLLGATE_VAR_DIR": str(var_dir), **variables}


def start_settings(var_dir, **variables) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PRINT_SECRETS], env=environment(var_dir, **variables),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_processes_starting_together_share_one_private_secret_of_each(tmp_path):
    racers = [start_settings(tmp_path) for _ in range(6)]
    results = [finish(racer) for racer in racers]
    assert all(code == 0 for code, _, _ in results), results
    [secrets] = {out for _, out, _ in results}
    assert all(len(value) >= 32 for value in secrets.split()) and len(secrets.split()) == 3
    for name in NAMES:
        path = tmp_path / name.lower()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() in secrets.split()
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporary left

    code, again, _ = finish(start_settings(tmp_path))
    assert code == 0 and again == secrets


@pytest.mark.parametrize("name", ["CREDENTIALS_KEY", "API_KEY_PEPPER"])
@pytest.mark.parametrize("value", ["", "too-short-for-a-key"])
def test_a_short_or_empty_key_in_the_environment_stops_the_process(tmp_path, name, value):
    code, _, err = finish(start_settings(tmp_path, **{name: value}))
    assert code != 0
    assert "ImproperlyConfigured" in err and f"{name} is set but is {len(value)} characters long" in err
    assert "at least 32" in err
    assert not (tmp_path / name.lower()).exists()


def test_a_long_enough_key_from_the_environment_is_used_as_it_is(tmp_path):
    pepper = "p" * 32
    code, out, _ = finish(start_settings(tmp_path, API_KEY_PEPPER=pepper, SECRET_KEY=""))
    assert code == 0 and out.split()[1] == pepper
    assert not (tmp_path / "api_key_pepper").exists() and (tmp_path / "secret_key").exists()


def test_an_empty_secret_file_stops_the_process_instead_of_keying_with_nothing(tmp_path):
    (tmp_path / "credentials_key").write_text("")
    code, _, err = finish(start_settings(tmp_path))
    assert code != 0 and f"{tmp_path / 'credentials_key'} holds no usable CREDENTIALS_KEY" in err
