# The fork server (with guard.py and runner.py in front and launcher.py after it; the launcher calls `serve` in modes
# `ns-serve` and `plain-serve` once the sandbox is set up: in `ns-serve` it is PID 1 of the sandbox's namespaces inside
# the private root).
#
# The server runs no untrusted code. It pre-imports common standard modules, makes itself non-dumpable (so a program,
# even one with the same uid, cannot ptrace it or open its `/proc/PID/fd`), then reads jobs from stdin (a 4-byte
# big-endian length, then JSON: `module`, base64 `program`, base64 `checks`) and answers each with one frame on stdout
# (a 4-byte length, then JSON: `code`, `signal`, `timedOut`, `truncated`, `completed`, `checks`, base64 `stdout` and
# `stderr`). Per program it forks:
#
# - `ns-serve`: child A unshares a mount, PID and IPC namespace and mounts a fresh size-limited tmpfs over the work
#   directory; A forks P, PID 1 of the new PID namespace (killed with A by `PR_SET_PDEATHSIG`), which mounts that
#   namespace's own `/proc`, drops every capability and forks the program Q. When Q ends, P exits and the kernel kills
#   whatever Q left in its PID namespace; its tmpfs and System V IPC objects go with its namespaces. The program cannot
#   name the server (it is outside the program's PID namespace) and holds none of its descriptors.
# - `plain-serve`: the child makes its own session in a fresh `run-N` directory under the work dir, which the server
#   removes afterwards (no security boundary, as `plain` mode in general).
#
# The program process sets the per-program resource limits, removes ctypes from `sys.modules`, re-seeds `random`,
# installs the audit hook (when the guard is on; irreversible, in that child only), and runs the program (runner.py)
# with stdin `/dev/null`, stdout and stderr on pipes to the server, the verdict pipe as descriptor 3 and the token pipe
# as descriptor 4. The server makes the tokens only after the fork (so no copy of them is in the program's memory),
# writes them to the token pipe, and reports a part as run to its end only when its token came back on the verdict
# pipe. The server enforces the wall-clock limit (SIGKILL of A, which takes P and the program's namespace with it; of
# the process group in plain mode) and keeps at most `outputBytes` of each output stream.

PRELOAD = ('math', 're', 'collections', 'itertools', 'functools', 'heapq', 'string', 'typing', 'hashlib', 'random',
           'bisect', 'copy', 'operator', 'fractions', 'statistics', 'decimal', 'datetime', 'json', 'traceback',
           'threading', 'atexit', 'stat', 'posix', 'struct', 'base64', 'select', 'time')
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWIPC = 0x20000, 0x20000000, 0x08000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
VERDICT_BYTES = 1 << 16  # what is kept of the verdict pipe (tokens are 33 bytes each)

def read_exact(n):
    buf = bytearray()
    while len(buf) < n:
        b = os.read(0, n - len(buf))
        if not b:
            return None
        buf += b
    return bytes(buf)

def send(obj):
    import json, struct
    data = json.dumps(obj).encode()
    view = memoryview(struct.pack('>I', len(data)) + data)
    while view:
        view = view[os.write(1, view):]

def serve(libc, ns):
    import struct
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    if ns and libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        fail('cannot make the server non-dumpable (errno ' + str(ctypes.get_errno()) + ')')
    os.environ.clear()
    os.environ.update(env)
    signal.alarm(0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    devnull = os.open('/dev/null', os.O_RDONLY)
    send({'ready': True})
    n = 0
    while True:
        head = read_exact(4)
        frame = head and read_exact(struct.unpack('>I', head)[0])
        if frame is None:
            os._exit(0)
        n += 1
        reply = run_one(libc, ns, read_job(frame), n, devnull)
        del frame
        send(reply)

def read_job(frame):
    import base64, json
    job = json.loads(frame)
    return {'module': job['module'], 'program': base64.b64decode(job['program']),
            'checks': [base64.b64decode(c) for c in job['checks']]}

def remove_tree(path):
    # what a program left, even folders it made unreadable; a failure here must never end the server
    import shutil
    try:
        os.chmod(path, 0o700)
        for top, dirs, _ in os.walk(path):  # top-down: each folder is opened up before it is entered
            for d in dirs:
                try:
                    os.chmod(os.path.join(top, d), 0o700, follow_symlinks=False)
                except (OSError, NotImplementedError):
                    pass
    except OSError:
        pass
    shutil.rmtree(path, ignore_errors=True)

def run_one(libc, ns, job, n, devnull):
    import base64, fcntl, select, time
    wd = workdir if ns else os.path.join(workdir, 'run-' + str(n))
    if not ns:
        os.mkdir(wd, 0o700)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    ver_r, ver_w = os.pipe()
    tok_r, tok_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            # 0 /dev/null, 1 and 2 the output pipes, 3 the verdict pipe, 4 the token pipe (see runner.py); copied out of
            # the way first, so that no dup2 overwrites a descriptor still to be placed
            for target, fd in enumerate([fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in (devnull, out_w, err_w, ver_w, tok_r)]):
                os.dup2(fd, target)
            os.closerange(5, 1 << 16)
            if ns:
                child_ns(libc, wd, job)
            else:
                # plain: its own session, and it dies with the server
                server = os.getppid()
                os.setsid()
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != server:
                    os._exit(SETUP_FAILED)
                run_child(wd, job)
        except BaseException as e:
            os.write(2, ('sandbox setup failed: ' + repr(e) + '\n').encode())
        os._exit(SETUP_FAILED)
    for fd in (out_w, err_w, ver_w, tok_r):
        os.close(fd)
    # the tokens exist only from now on, in the server: the program's process is a copy of the server from before
    tokens = [os.urandom(16).hex().encode() for _ in range(1 + len(job['checks']))]
    try:
        os.write(tok_w, b'\n'.join(tokens) + b'\n')
    except OSError:
        pass  # the child died before reading them: its status says why
    os.close(tok_w)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    deadline = time.monotonic() + limits['timeoutMs'] / 1000
    kept = {out_r: bytearray(), err_r: bytearray(), ver_r: bytearray()}
    room = {out_r: limits['outputBytes'], err_r: limits['outputBytes'], ver_r: VERDICT_BYTES}
    streams = [out_r, err_r, ver_r]
    truncated = timed_out = False
    status = None
    grace_end = None
    def kill():
        for f in ((lambda: os.killpg(pid, signal.SIGKILL)) if not ns else None, lambda: os.kill(pid, signal.SIGKILL)):
            try:
                f and f()
            except OSError:
                pass
    while True:
        now = time.monotonic()
        if status is None and pidfd is None:
            p, st = os.waitpid(pid, os.WNOHANG)
            if p:
                status = st
        if status is not None and grace_end is None:
            grace_end = now + 0.5  # a process that left the group may hold the pipes: stop reading shortly after
        if status is None and not timed_out and now >= deadline:
            timed_out = True
            kill()
        if not streams or (grace_end is not None and now >= grace_end):
            break
        wait = (deadline if not timed_out else now + 0.05) - now if grace_end is None else grace_end - now
        if pidfd is None:
            wait = min(wait, 0.005)
        ready, _, _ = select.select(streams + ([pidfd] if pidfd is not None and status is None else []), [], [], max(wait, 0))
        for fd in ready:
            if fd == pidfd:
                status = os.waitpid(pid, 0)[1]
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                streams.remove(fd)
                continue
            left = room[fd] - len(kept[fd])
            if len(data) > left and fd != ver_r:
                truncated = True
            if left > 0:
                kept[fd] += data[:left]
    if status is None:
        kill()
        status = os.waitpid(pid, 0)[1]
    if not ns:
        kill()  # what the program left in its process group
    for fd in (out_r, err_r, ver_r) + ((pidfd,) if pidfd is not None else ()):
        os.close(fd)
    while True:  # orphans that ended up as the server's children (PID 1 of its namespace)
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    if not ns:
        remove_tree(wd)
    code = os.waitstatus_to_exitcode(status)
    verdict = bytes(kept[ver_r])
    return {'code': code if code >= 0 else None, 'signal': signal.Signals(-code).name if code < 0 else None,
            'timedOut': timed_out, 'truncated': truncated,
            'completed': tokens[0] in verdict, 'checks': [t in verdict for t in tokens[1:]],
            'stdout': base64.b64encode(kept[out_r]).decode(), 'stderr': base64.b64encode(kept[err_r]).decode()}

def child_ns(libc, wd, job):
    # A: the program's own mount, PID and IPC namespaces, with a fresh tmpfs work directory
    libc.unshare.argtypes = [ctypes.c_int]
    if libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC) != 0:
        fail('cannot unshare for the program (errno ' + str(ctypes.get_errno()) + ')')
    opts = ('size=' + str(limits['diskBytes']) + ',mode=0755').encode()
    if libc.mount(b'tmpfs', wd.encode(), b'tmpfs', MS_NOSUID | MS_NODEV, opts) != 0:
        fail('cannot mount the program tmpfs (errno ' + str(ctypes.get_errno()) + ')')
    p = os.fork()
    if p == 0:
        # P: PID 1 of the program's PID namespace; dies with A, and its end kills everything left in the namespace
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            fail('cannot set the parent-death signal (errno ' + str(ctypes.get_errno()) + ')')
        if libc.mount(b'proc', b'/proc', b'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
            fail('cannot mount /proc for the program (errno ' + str(ctypes.get_errno()) + ')')
        drop_capabilities(libc)
        q = os.fork()
        if q == 0:
            run_child(wd, job)
        os._exit(wait_for(q))
    os._exit(wait_for(p))

def wait_for(pid):
    while True:
        p, status = os.wait()
        if p == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code

def run_child(wd, job):
    # Q: the program's process. Nothing of the server it could use stays reachable; then the guard, then the program.
    import random
    os.chdir(wd)
    path = os.path.join(wd, 'program.py')
    with open(path, 'wb') as f:
        f.write(job['program'])
    os.environ['HOME'] = os.environ['TMPDIR'] = wd
    set_limits()
    for name in [m for m in sys.modules if m in ('ctypes', '_ctypes') or m.startswith('ctypes.')]:
        del sys.modules[name]
    for name in ('libc', 'ctypes'):
        globals().pop(name, None)
    random.seed()
    if limits['guard']:
        sys.addaudithook(_install(wd))
    sys.argv = [path]
    os._exit(run_program(path, job['program'], job['checks'], job['module']))
