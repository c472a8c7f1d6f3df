"""OS-level confinement of the SQL sandbox's worker: Landlock, seccomp, no new privileges, rlimits.

Standard library only: the worker imports this before DuckDB or pyarrow, and before any
thread exists, so every thread it ever runs inherits the confinement (Landlock and seccomp
apply to the calling thread and its future children).

What each layer stops, on its own:
- Landlock (Linux 5.13+, ABI 1..7): the process may read only the directories it is given,
  write only its temporary directory, execute nothing, and (ABI 4+) neither bind nor connect
  TCP; (ABI 6+) it may not signal processes or reach abstract unix sockets outside itself.
- seccomp: `socket`, `execve` and the other syscalls a query engine never needs fail with
  EPERM, whatever the file system allows.
- no_new_privs: nothing it runs can gain privileges (set-uid binaries, file capabilities).
- rlimits: the whole worker's address space, the size of any file it writes, no core dumps.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct
from collections.abc import Iterable

_PR_SET_NO_NEW_PRIVS = 38

# Landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on every
# architecture that has them.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13
_FS_TRUNCATE = 1 << 14
_FS_IOCTL_DEV = 1 << 15
_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1

_READ = _FS_READ_FILE | _FS_READ_DIR
_WRITE = (
    _READ
    | _FS_WRITE_FILE
    | _FS_REMOVE_DIR
    | _FS_REMOVE_FILE
    | _FS_MAKE_DIR
    | _FS_MAKE_REG
    | _FS_TRUNCATE
)

# seccomp
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_EPERM = 1
_X32_SYSCALL_BIT = 0x40000000

#: Syscalls the worker never needs, by architecture: no network, no new programs, no
#: debugging or namespaces, no kernel modules or keyrings.
DENIED_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "socket": 41,
        "connect": 42,
        "accept": 43,
        "bind": 49,
        "listen": 50,
        "socketpair": 53,
        "execve": 59,
        "ptrace": 101,
        "chroot": 161,
        "mount": 165,
        "umount2": 166,
        "swapon": 167,
        "swapoff": 168,
        "reboot": 169,
        "init_module": 175,
        "delete_module": 176,
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
        "unshare": 272,
        "kexec_load": 246,
        "accept4": 288,
        "perf_event_open": 298,
        "setns": 308,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "finit_module": 313,
        "execveat": 322,
        "userfaultfd": 323,
        "bpf": 321,
        "io_uring_setup": 425,
        "pivot_root": 155,
    },
    "aarch64": {
        "socket": 198,
        "socketpair": 199,
        "bind": 200,
        "listen": 201,
        "accept": 202,
        "connect": 203,
        "execve": 221,
        "ptrace": 117,
        "chroot": 51,
        "mount": 40,
        "umount2": 39,
        "swapon": 224,
        "swapoff": 225,
        "reboot": 142,
        "init_module": 105,
        "delete_module": 106,
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
        "unshare": 97,
        "kexec_load": 104,
        "accept4": 242,
        "perf_event_open": 241,
        "setns": 268,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "finit_module": 273,
        "execveat": 281,
        "userfaultfd": 282,
        "bpf": 280,
        "io_uring_setup": 425,
        "pivot_root": 41,
    },
}


class ConfinementError(RuntimeError):
    """A confinement layer that was asked for could not be applied."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _fail(what: str) -> ConfinementError:
    err = ctypes.get_errno()
    return ConfinementError(f"{what} failed: {os.strerror(err)} (errno {err})")


def no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS): required for unprivileged seccomp and Landlock."""
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable or disabled."""
    libc = _libc()
    abi = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET,
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(0, int(abi))


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM (ABI 1)
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock(*, read: Iterable[str], write: Iterable[str], list_only: Iterable[str] = ()) -> int:
    """Allow reading only under `read` and writing only under `write`; returns the ABI used.

    Directories in `list_only` may be listed but none of their files read (the import
    system must list site-packages to find DuckDB; the other packages there stay unreadable).

    Everything else in the file system is refused from now on, including execution
    everywhere; with ABI 4+ TCP bind/connect and with ABI 6+ signals and abstract unix
    sockets outside this process are refused too. Returns 0 (and changes nothing) when the
    kernel has no Landlock.
    """
    abi = landlock_abi()
    if abi == 0:
        return 0
    libc = _libc()
    handled_fs = _fs_rights(abi)
    handled_net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("=Q", handled_fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    try:
        for paths, rights in (
            (list_only, _FS_READ_DIR),
            (read, _READ),
            (write, _WRITE & handled_fs),
        ):
            for path in paths:
                _add_path_rule(libc, ruleset, path, rights)
        no_new_privs()
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise _fail("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _add_path_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            rights &= _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)
        if libc.syscall(
            _SYS_LANDLOCK_ADD_RULE, ruleset, ctypes.c_uint32(_LANDLOCK_RULE_PATH_BENEATH), rule, 0
        ):
            raise _fail(f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _filter(arch: str, denied: Iterable[int]) -> bytes:
    def stmt(code: int, k: int) -> bytes:
        return struct.pack("=HBBI", code, 0, 0, k)

    def jeq(k: int, jt: int, jf: int) -> bytes:
        return struct.pack("=HBBI", 0x15, jt, jf, k)

    errno = _SECCOMP_RET_ERRNO | _EPERM
    numbers = sorted(set(denied))
    prog = [
        stmt(0x20, 4),  # A = arch
        jeq(_AUDIT_ARCH[arch], 1, 0),
        stmt(0x06, errno),  # another ABI: refuse every call
        stmt(0x20, 0),  # A = syscall number
    ]
    if arch == "x86_64":
        prog.append(struct.pack("=HBBI", 0x35, 0, 1, _X32_SYSCALL_BIT))  # x32 calls
        prog.append(stmt(0x06, errno))
    for i, nr in enumerate(numbers):
        prog.append(jeq(nr, len(numbers) - i, 0))
    prog.append(stmt(0x06, _SECCOMP_RET_ALLOW))
    prog.append(stmt(0x06, errno))
    return b"".join(prog)


def seccomp_deny(names: Iterable[str] | None = None) -> int:
    """Make the given syscalls (default: all of DENIED_SYSCALLS) fail with EPERM, in every thread.

    Returns the number of syscalls denied; 0 (and changes nothing) on an architecture this
    module has no table for.
    """
    arch = platform.machine()
    table = DENIED_SYSCALLS.get(arch)
    if table is None:
        return 0
    wanted = table if names is None else {n: table[n] for n in names}
    program = _filter(arch, wanted.values())
    count = len(program) // 8
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", count, ctypes.addressof(filters))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    no_new_privs()
    libc = _libc()
    if libc.syscall(_SYS_SECCOMP[arch], _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC, fbuf):
        raise _fail("seccomp(SECCOMP_SET_MODE_FILTER)")
    return len(wanted)


def limit_resources(*, address_space: int | None, file_size: int | None) -> None:
    """rlimits for the whole process: address space, largest file written, no core dumps."""
    if address_space is not None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    if file_size is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def confine(
    *,
    read: Iterable[str],
    write: Iterable[str],
    list_only: Iterable[str] = (),
    address_space: int | None,
    file_size: int | None,
    require_landlock: bool = False,
) -> dict[str, int | bool]:
    """Apply every layer; returns what was applied (for the parent to report and test)."""
    limit_resources(address_space=address_space, file_size=file_size)
    no_new_privs()
    abi = landlock(read=list(read), write=list(write), list_only=list(list_only))
    if require_landlock and abi == 0:
        raise ConfinementError(
            "Landlock is required (STOCKDATA_SQL_REQUIRE_LANDLOCK) but the kernel has none"
        )
    denied = seccomp_deny()
    return {"no_new_privs": True, "landlock_abi": abi, "seccomp_denied": denied}
