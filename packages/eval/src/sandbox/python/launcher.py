# The launcher that runs first inside a sandbox (as `python3 -I -B -c LAUNCHER MODE WORKDIR LIMITS_JSON`, the text of
# this file, read by python-source.ts).
#
# MODE `ns`: it is PID 1 of fresh user, PID, network, IPC, UTS and mount namespaces (made by `unshare`). It reads the
# work directory's files, builds a private root (a small tmpfs over the work directory holding read-only bind mounts
# of the interpreter, its loader, its standard library and the system library directory, `/dev/null`-like nodes, the
# namespace's own `/proc`, and a size-limited tmpfs work directory at the host path, with the files written back),
# `pivot_root`s into it and detaches the host's root, then forks the program without any capability, under the
# resource limits, and waits for it; when the launcher exits the kernel kills everything left in the PID namespace.
# MODE `plain` (no namespaces on this machine): it sets the resource limits and execs the program in place.
# In both modes the program arrives on stdin after the setup (a `P` byte, then a JSON job: `module`, base64 `program`
# and `checks`, and `tokens`, one per part; then end of file), so a sandbox can be prepared before its program is known
# (the warm pool of `Sandbox`). The launcher writes `program.py` and `job.json` into the work directory and hands the
# tokens to the program's Python on descriptor 4 (see runner.py); descriptor 3, the verdict pipe to Node, is passed
# through untouched. In `ns` mode the program's Python (guard.py, already under the limits) is started before the
# program arrives and waits on a pipe for the word to run it. Anything else on stdin (the Node process gone) ends the
# launcher with 122 before anything runs. An alarm ends the setup after `wallSeconds`, and the run `wallSeconds` after
# the program arrived, even if the Node process is gone.
# Exit code 121 means the sandbox itself could not be set up (never a program result).
# MODES `ns-serve` and `plain-serve` (with guard.py, runner.py and server.py in front): the same setup, then a fork
# server that runs many programs, each in a fresh child (see server.py).

import ctypes, json, os, resource, signal, sys

SETUP_FAILED = 121
mode, workdir, limits = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

def fail(msg):
    os.write(2, ('sandbox setup failed: ' + msg + '\n').encode())
    os._exit(SETUP_FAILED)

def set_limits():
    pairs = [
        (resource.RLIMIT_AS, limits['memoryBytes']),
        (resource.RLIMIT_CPU, limits['cpuSeconds']),
        (resource.RLIMIT_NPROC, limits['processes']),
        (resource.RLIMIT_FSIZE, limits['fileBytes']),
        (resource.RLIMIT_NOFILE, limits['openFiles']),
        (resource.RLIMIT_CORE, 0),
    ]
    for res, value in pairs:
        resource.setrlimit(res, (value, value))

def unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = bytearray(), 0
    raw = field.encode()
    while i < len(raw):
        if raw[i] == 92 and i + 3 < len(raw) and raw[i+1:i+4].isdigit():
            out.append(int(raw[i+1:i+4], 8)); i += 4
        else:
            out.append(raw[i]); i += 1
    return out.decode()

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
ST_TO_MS = [(os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
            (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)]
SYS_PIVOT_ROOT = {'x86_64': 155, 'aarch64': 41, 'riscv64': 41, 'ppc64le': 203, 's390x': 217}.get(os.uname().machine)

def elf_interpreter(path):
    # PT_INTERP of a 64-bit little-endian ELF file (the dynamic loader it needs), or None
    try:
        with open(path, 'rb') as f:
            head = f.read(64)
            if head[:4] != b'\x7fELF' or head[4] != 2:
                return None
            phoff, phentsize, phnum = int.from_bytes(head[32:40], 'little'), int.from_bytes(head[54:56], 'little'), int.from_bytes(head[56:58], 'little')
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                if int.from_bytes(ph[0:4], 'little') == 3:
                    f.seek(int.from_bytes(ph[8:16], 'little'))
                    return f.read(int.from_bytes(ph[32:40], 'little')).rstrip(b'\0').decode()
    except OSError:
        return None
    return None

def needed_paths():
    # what the program's Python needs: the interpreter (and its loader), its standard library (no site-packages),
    # the system library directory (libc and what the stdlib's extension modules link), libraries it has mapped
    paths = [sys.executable, os.path.realpath(sys.executable), '/etc/ld.so.cache']
    interp = elf_interpreter(os.path.realpath(sys.executable))
    if interp:
        paths.append(interp)
    paths += [p for p in sys.path if p and 'site-packages' not in p and 'dist-packages' not in p]
    with open('/proc/self/maps') as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith('/') and '.so' in parts[5]:
                lib = parts[5].strip()
                paths.append(os.path.dirname(lib) if os.path.basename(lib).startswith(('libc.so', 'libc-')) else lib)
    return [p for p in dict.fromkeys(paths) if os.path.exists(p)]

def copy_path(root, path, libc, seen=None):
    # makes path exist under root as on the host: symlinks as symlinks (their targets followed), the final directory
    # or file bound read-only from the host
    seen = seen if seen is not None else set()
    if path in seen or len(seen) > 40:
        return
    seen.add(path)
    at = '/'
    parts = [p for p in path.split('/') if p]
    for i, name in enumerate(parts):
        host = os.path.join(at, name)
        inside = root + host
        last = i == len(parts) - 1
        if os.path.islink(host):
            target = os.readlink(host)
            if not os.path.lexists(inside):
                os.symlink(target, inside)
            rest = '/'.join(parts[i + 1:])
            copy_path(root, os.path.normpath(os.path.join(at, target, rest)), libc, seen)
            return
        if not last:
            if not os.path.isdir(inside):
                os.mkdir(inside, 0o755)
            at = host
            continue
        if any(inside == b or inside.startswith(b + '/') for b in bound):
            return  # already visible through a bind
        if os.path.isdir(host):
            os.makedirs(inside, 0o755, exist_ok=True)
        elif not os.path.exists(inside):
            open(inside, 'wb').close()
        bind_read_only(libc, host, inside)

bound = set()

def bind_read_only(libc, source, target):
    if libc.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        fail('cannot bind ' + source + ' (errno ' + str(ctypes.get_errno()) + ')')
    bound.add(target)
    st = os.statvfs(target)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for st_flag, ms_flag in ST_TO_MS:
        if st.f_flag & st_flag:
            flags |= ms_flag
    if libc.mount(None, target.encode(), None, flags, None) != 0:
        fail('cannot make ' + source + ' read-only (errno ' + str(ctypes.get_errno()) + ')')

def private_root(libc, root, files):
    # a fresh root: a small tmpfs holding read-only binds of what Python needs, /dev's harmless nodes, this PID
    # namespace's /proc and a size-limited tmpfs work directory at the same path as on the host; the host's root is
    # then detached, so nothing else of the host filesystem can be named
    if libc.mount(None, b'/', None, MS_REC | MS_PRIVATE, None) != 0:
        fail('cannot make mounts private (errno ' + str(ctypes.get_errno()) + ')')
    if libc.mount(b'tmpfs', root.encode(), b'tmpfs', MS_NOSUID | MS_NODEV, b'size=4m,mode=0755') != 0:
        fail('cannot mount the root tmpfs (errno ' + str(ctypes.get_errno()) + ')')
    for p in needed_paths():
        copy_path(root, p, libc)
    os.makedirs(root + '/dev', 0o755, exist_ok=True)
    for dev in ('null', 'zero', 'urandom', 'random'):
        target = root + '/dev/' + dev
        open(target, 'wb').close()
        if libc.mount(('/dev/' + dev).encode(), target.encode(), None, MS_BIND, None) != 0:
            os.remove(target)
    os.makedirs(root + '/proc', 0o555, exist_ok=True)
    libc.mount(b'proc', (root + '/proc').encode(), b'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    os.makedirs(root + workdir, 0o755, exist_ok=True)
    opts = ('size=' + str(limits['diskBytes']) + ',mode=0755').encode()
    if libc.mount(b'tmpfs', (root + workdir).encode(), b'tmpfs', MS_NOSUID | MS_NODEV, opts) != 0:
        fail('cannot mount a tmpfs work directory (errno ' + str(ctypes.get_errno()) + ')')
    for name, data in files.items():
        with open(os.path.join(root + workdir, name), 'wb') as f:
            f.write(data)
    os.chdir(root)
    if SYS_PIVOT_ROOT is not None and libc.syscall(SYS_PIVOT_ROOT, b'.', b'.') == 0:
        if libc.umount2(b'.', MNT_DETACH) != 0:
            fail('cannot detach the host root (errno ' + str(ctypes.get_errno()) + ')')
    else:
        os.chroot('.')
    os.chdir('/')
    if libc.mount(None, b'/', None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None) != 0:
        fail('cannot make the new root read-only (errno ' + str(ctypes.get_errno()) + ')')

def drop_capabilities(libc):
    # the program runs as root of its user namespace: it keeps no capability there (so it cannot remount or unmount)
    PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        fail('cannot drop capabilities (errno ' + str(ctypes.get_errno()) + ')')
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail('cannot set no_new_privs (errno ' + str(ctypes.get_errno()) + ')')

def program_argv():
    config = json.dumps({'workdir': workdir, 'guard': limits['guard']})
    return [sys.executable, '-I', '-B', os.path.join(workdir, 'guard.py'), config]

env = {'PATH': '/usr/bin:/bin', 'HOME': workdir, 'TMPDIR': workdir, 'LANG': 'C.UTF-8', 'PYTHONHASHSEED': '0'}

# A watchdog of its own, in case the Node process that would enforce the wall-clock limit dies first.
def receive_program():
    chunks = []
    while True:
        b = os.read(0, 1 << 16)
        if not b:
            break
        chunks.append(b)
    data = b''.join(chunks)
    if not data.startswith(b'P'):
        os._exit(122)  # no program came: the sandbox was prepared and never used
    import base64
    job = json.loads(data[1:])
    with open(os.path.join(workdir, 'program.py'), 'wb') as f:
        f.write(base64.b64decode(job['program']))
    checks = [base64.b64decode(c).decode('utf-8') for c in job['checks']]
    with open(os.path.join(workdir, 'job.json'), 'w') as f:
        json.dump({'module': job['module'], 'checks': checks}, f)
    return ('\n'.join(job['tokens']) + '\n').encode()

def take_tokens(r):
    # in the program's Python-to-be: the read end of the token pipe as descriptor 4, kept across exec (see runner.py)
    if r != 4:
        os.dup2(r, 4)
        os.close(r)
    os.set_inheritable(4, True)

if mode == 'plain-serve':
    try:
        os.chdir(workdir)
    except Exception as e:
        fail(repr(e))
    serve(ctypes.CDLL(None, use_errno=True), False)

if mode == 'plain':
    try:
        os.chdir(workdir)
        tokens = receive_program()
        tok_read, tok_write = os.pipe()
        os.write(tok_write, tokens)
        os.close(tok_write)
        take_tokens(tok_read)
        set_limits()
        signal.alarm(limits['wallSeconds'])  # survives exec; SIGALRM's default action ends the program
    except Exception as e:
        fail(repr(e))
    os.execve(sys.executable, program_argv(), env)

signal.signal(signal.SIGALRM, lambda *_: os._exit(124))
signal.alarm(limits['wallSeconds'])

try:
    files = {}
    for name in os.listdir(workdir):
        with open(os.path.join(workdir, name), 'rb') as f:
            files[name] = f.read()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    private_root(libc, workdir, files)
    os.chdir(workdir)
    signal.alarm(0)  # prepared: wait for the program as long as it takes
except SystemExit:
    raise
except Exception as e:
    fail(repr(e))

if mode == 'ns-serve':
    serve(libc, True)

# The program's Python (guard.py) starts now, under the limits, and waits on a pipe for the word to go.
go_read, go_write = os.pipe()
tok_read, tok_write = os.pipe()
child = os.fork()
if child == 0:
    try:
        os.dup2(go_read, 0)
        take_tokens(tok_read)
        for fd in {go_read, go_write, tok_write} - {0, 3, 4}:
            os.close(fd)
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        drop_capabilities(libc)
        set_limits()
        os.execve(sys.executable, program_argv() + ['wait'], env)
    except Exception as e:
        fail(repr(e))
os.close(go_read)
os.close(tok_read)
try:
    tokens = receive_program()
except Exception as e:
    os.kill(child, signal.SIGKILL)
    fail(repr(e))
try:
    os.write(tok_write, tokens)
except OSError:
    pass  # the program's Python died while waiting: its status is reported below
os.close(tok_write)
del tokens
signal.alarm(limits['wallSeconds'])
try:
    os.write(go_write, b'G')
except OSError:
    pass  # the program's Python died while waiting: its status is reported below
os.close(go_write)
while True:
    pid, status = os.wait()
    if pid == child:
        break
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
