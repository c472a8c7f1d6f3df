"""The OS layer of the SQL sandbox on its own: a process confined by `_confine`, doing by hand
what a query engine with a hole in it might try (no DuckDB involved)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from query_api import _confine as confine

HERE = Path(confine.__file__).resolve().parent

ATTEMPTS = textwrap.dedent(
    """
    import json, os, socket, sys
    sys.path.insert(0, {here!r})
    import _confine
    allowed, scratch, secret, outside = sys.argv[1:5]
    status = _confine.confine(read=[allowed], write=[scratch], address_space=2 * 1024**3,
                              file_size=1024 * 1024)
    out = {{"status": status}}
    def attempt(name, fn):
        try:
            fn()
            out[name] = "allowed"
        except OSError as exc:
            out[name] = exc.errno
        except MemoryError:
            out[name] = "MemoryError"
    attempt("read allowed", lambda: open(os.path.join(allowed, "data.txt")).read())
    attempt("read secret", lambda: open(secret).read())
    attempt("read /etc/passwd", lambda: open("/etc/passwd").read())
    attempt("list /", lambda: os.listdir("/"))
    attempt("write scratch", lambda: open(os.path.join(scratch, "x"), "w").write("x"))
    attempt("write allowed", lambda: open(os.path.join(allowed, "planted.py"), "w").write("x"))
    attempt("write outside", lambda: open(outside, "w").write("x"))
    attempt("mkdir outside", lambda: os.mkdir(outside + ".d"))
    attempt("symlink out", lambda: os.symlink(secret, os.path.join(scratch, "link")))
    attempt("read via link", lambda: open(os.path.join(scratch, "link")).read())
    attempt("hardlink out", lambda: os.link(secret, os.path.join(scratch, "hard")))
    attempt("rename into allowed", lambda: os.rename(os.path.join(scratch, "x"),
                                                   os.path.join(allowed, "moved")))
    attempt("tcp socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    attempt("udp socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    attempt("unix socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    attempt("socketpair", lambda: socket.socketpair())
    attempt("exec", lambda: os.execv("/bin/true", ["true"]))
    attempt("signal parent", lambda: os.kill(os.getppid(), 0))
    attempt("big file", lambda: open(os.path.join(scratch, "big"), "wb").write(b"x" * (2 << 20)))
    attempt("huge allocation", lambda: bytearray(3 * 1024**3))
    print(json.dumps(out))
    """
)


@pytest.fixture
def outcome(tmp_path: Path) -> dict[str, object]:
    allowed = tmp_path / "allowed"
    scratch = tmp_path / "scratch"
    allowed.mkdir()
    scratch.mkdir()
    (allowed / "data.txt").write_text("data")
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret")
    script = tmp_path / "attempts.py"
    script.write_text(ATTEMPTS.format(here=str(HERE)))
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(script),
            str(allowed),
            str(scratch),
            str(secret),
            str(tmp_path / "outside.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    assert not (tmp_path / "outside.txt").exists()
    assert not (allowed / "planted.py").exists()
    assert not (allowed / "moved").exists()
    return result


EACCES, EPERM, EXDEV, EFBIG = 13, 1, 18, 27


def test_a_confined_process_reaches_only_what_it_was_given(outcome: dict[str, object]) -> None:
    assert outcome.pop("status") == {
        "no_new_privs": True,
        "landlock_abi": confine.landlock_abi(),
        "seccomp_denied": len(confine.DENIED_SYSCALLS["x86_64"]),
    }
    assert outcome == {
        "read allowed": "allowed",
        "read secret": EACCES,
        "read /etc/passwd": EACCES,
        "list /": EACCES,
        "write scratch": "allowed",
        "write allowed": EACCES,
        "write outside": EACCES,
        "mkdir outside": EACCES,
        "symlink out": EACCES,  # MAKE_SYM is refused everywhere
        "read via link": 2,  # ENOENT: the link was never made
        "hardlink out": EXDEV,  # Landlock refuses links across rule boundaries
        "rename into allowed": EACCES,
        "tcp socket": EPERM,
        "udp socket": EPERM,
        "unix socket": EPERM,
        "socketpair": EPERM,
        "exec": EPERM,
        "signal parent": EPERM,
        "big file": EFBIG,
        "huge allocation": "MemoryError",
    }


def test_landlock_is_present_on_this_kernel() -> None:
    """CI runs on a kernel with Landlock ABI 7; the sandbox degrades (and says so) without."""
    assert confine.landlock_abi() >= 4
