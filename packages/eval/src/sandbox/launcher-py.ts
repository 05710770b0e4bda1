/**
 * The Python launcher that runs first inside a sandbox (as `python3 -I -B -c LAUNCHER_PY MODE WORKDIR LIMITS_JSON`).
 *
 * MODE `ns`: it is PID 1 of fresh user, PID, network, IPC, UTS and mount namespaces (made by `unshare`). It reads the
 * work directory's files, remounts every mount read-only in its private mount namespace, mounts a size-limited tmpfs
 * over the work directory, writes the files back, then forks the program with the resource limits and waits for it;
 * when the launcher exits the kernel kills everything left in the PID namespace.
 * MODE `plain` (no namespaces on this machine): it sets the resource limits and execs the program in place.
 * In both modes the program arrives on stdin after the setup (a `P` byte, then its source, then end of file), so a
 * sandbox can be prepared before its program is known (the warm pool of `Sandbox`). In `ns` mode the program's own
 * Python (guard.py, already under the limits) is started before the program arrives and waits on a pipe for the word
 * to run it. Anything else on stdin (the Node
 * process gone) ends the launcher with 122 before anything runs. An alarm ends the setup after `wallSeconds`, and the
 * run `wallSeconds` after the program arrived, even if the Node process is gone.
 * Exit code 121 means the sandbox itself could not be set up (never a program result).
 */
export const LAUNCHER_PY = String.raw`
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

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
ST_TO_MS = [(os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
            (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)]

def read_only_everywhere(libc):
    with open('/proc/self/mountinfo') as f:
        points = [unescape(line.split()[4]) for line in f]
    for point in points:
        try:
            st = os.statvfs(point)
        except OSError:
            continue  # hidden under another mount or not reachable: nothing to remount
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for st_flag, ms_flag in ST_TO_MS:
            if st.f_flag & st_flag:
                flags |= ms_flag
        if libc.mount(None, point.encode(), None, flags, None) != 0:
            if st.f_flag & os.ST_RDONLY:
                continue
            fail('cannot make ' + point + ' read-only (errno ' + str(ctypes.get_errno()) + ')')

def program_argv():
    return [sys.executable, '-I', '-B', os.path.join(workdir, 'guard.py')]

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
    with open(os.path.join(workdir, 'program.py'), 'wb') as f:
        f.write(data[1:])

if mode == 'plain':
    try:
        os.chdir(workdir)
        receive_program()
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
    read_only_everywhere(libc)
    opts = ('size=' + str(limits['diskBytes']) + ',mode=0755').encode()
    if libc.mount(b'tmpfs', workdir.encode(), b'tmpfs', MS_NOSUID | MS_NODEV, opts) != 0:
        fail('cannot mount a tmpfs work directory (errno ' + str(ctypes.get_errno()) + ')')
    for name, data in files.items():
        with open(os.path.join(workdir, name), 'wb') as f:
            f.write(data)
    os.chdir(workdir)
    signal.alarm(0)  # prepared: wait for the program as long as it takes
except SystemExit:
    raise
except Exception as e:
    fail(repr(e))

# The program's Python (guard.py) starts now, under the limits, and waits on a pipe for the word to go.
go_read, go_write = os.pipe()
child = os.fork()
if child == 0:
    try:
        os.dup2(go_read, 0)
        os.close(go_read)
        os.close(go_write)
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        set_limits()
        os.execve(sys.executable, program_argv() + ['wait'], env)
    except Exception as e:
        fail(repr(e))
os.close(go_read)
try:
    receive_program()
except Exception as e:
    os.kill(child, signal.SIGKILL)
    fail(repr(e))
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
`;
