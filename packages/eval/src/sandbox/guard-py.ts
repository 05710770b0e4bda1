/**
 * The program wrapper `guard.py`: optionally installs a Python audit hook (the in-process layer of the sandbox), then
 * runs `program.py` as `__main__`. The hook refuses sockets, signals to other processes, new processes, native code
 * loading (ctypes), writes, deletions and renames outside the work directory, and reads of other processes'
 * `/proc/PID/environ`. It is a second layer under the kernel's (namespaces and resource limits): Python code can
 * sometimes get around an audit hook, a kernel limit it cannot.
 */
export function guardPy(workdir: string, enabled: boolean): string {
  return String.raw`
import os, sys
WORKDIR = ${JSON.stringify(workdir)}
if ${enabled ? 'True' : 'False'}:
    def _inside(path):
        if isinstance(path, int):
            return True
        try:
            p = os.path.realpath(os.fsdecode(path))
        except Exception:
            return False
        return p == WORKDIR or p.startswith(WORKDIR + os.sep)
    _DENY = frozenset(['socket.__new__', 'socket.connect', 'socket.bind', 'socket.getaddrinfo', 'socket.sendto',
        'os.kill', 'os.killpg', 'signal.pthread_kill', 'os.fork', 'os.forkpty', 'os.system', 'os.exec', 'os.posix_spawn',
        'os.spawn', 'subprocess.Popen', 'os.startfile', 'ctypes.dlopen', 'ctypes.dlsym', 'os.setuid', 'os.setgid',
        'resource.setrlimit', 'resource.prlimit', 'sys.addaudithook', 'os.putenv'])
    _PATH_ARGS = {'os.remove': 1, 'os.rmdir': 1, 'os.rename': 2, 'os.replace': 2, 'os.mkdir': 1, 'os.chmod': 1,
        'os.chown': 1, 'os.link': 2, 'os.symlink': 2, 'os.truncate': 1, 'os.utime': 1, 'shutil.rmtree': 1,
        'shutil.copyfile': 2, 'shutil.copytree': 2, 'shutil.move': 2, 'os.chflags': 1, 'os.setxattr': 1,
        'os.removexattr': 1, 'os.mkfifo': 1, 'os.mknod': 1}
    _BLOCKED_MODULES = frozenset(['_posixsubprocess', '_ctypes', 'ctypes', 'multiprocessing', '_multiprocessing', 'pty'])
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _SELF = os.getpid()
    def _hook(event, args):
        if event in _DENY:
            if event in ('os.kill', 'os.killpg') and args and args[0] == _SELF:
                return
            raise PermissionError('sandbox: ' + event + ' is not allowed')
        if event == 'import' and args and args[0] in _BLOCKED_MODULES:
            raise ImportError('sandbox: import of ' + args[0] + ' is not allowed')
        if event == 'open' and args and not isinstance(args[0], int):
            path, mode, flags = args[0], args[1] or '', args[2] or 0
            writing = any(c in str(mode) for c in 'wax+') or (flags & _WRITE_FLAGS) != 0
            if writing and not _inside(path):
                raise PermissionError('sandbox: writing outside the work directory is not allowed: ' + str(path))
            text = os.fsdecode(path) if isinstance(path, (str, bytes)) else ''
            if text.startswith('/proc/') and text.endswith('/environ') and text not in ('/proc/self/environ', '/proc/' + str(_SELF) + '/environ'):
                raise PermissionError('sandbox: reading another process environment is not allowed')
            return
        n = _PATH_ARGS.get(event)
        if n:
            for p in args[:n]:
                if not _inside(p):
                    raise PermissionError('sandbox: ' + event + ' outside the work directory is not allowed')
    sys.addaudithook(_hook)
    del _hook
if sys.argv[1:] == ['wait']:
    # started ahead of its program (namespace mode): run once the launcher has written program.py and says go
    if os.read(0, 1) != b'G':
        os._exit(122)
sys.argv = [os.path.join(WORKDIR, 'program.py')]
with open(sys.argv[0], 'rb') as _f:
    _code = compile(_f.read(), sys.argv[0], 'exec')
del _f
exec(_code, {'__name__': '__main__', '__file__': sys.argv[0], '__builtins__': __builtins__})
`;
}
