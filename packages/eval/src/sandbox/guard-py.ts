/**
 * The Python function `_install(workdir)` that builds the sandbox's audit hook (see `guardPy`): shared by the one-shot
 * wrapper `guard.py` and the fork server, whose child installs it just before running its program.
 */
export const GUARD_INSTALL_PY = String.raw`
def _install(workdir):
    # Everything the hook reads is captured here, in its closure, as immutable values or builtin functions: the
    # program can rebind module globals, builtins or os functions, and the hook does not see it. The ways to reach
    # the hook object itself (gc's object lists, trace and profile functions) are refused.
    import posix, stat
    _isinstance, _str, _bytes, _int, _any, _PermissionError, _ImportError = isinstance, str, bytes, int, any, PermissionError, ImportError
    _lstat, _readlink, _getcwd, _S_ISLNK, _fsdecode = posix.lstat, posix.readlink, posix.getcwd, stat.S_ISLNK, os.fsdecode
    _normpath, _join, _dirname = os.path.normpath, os.path.join, os.path.dirname
    sep = '/'
    prefix = workdir + sep

    def realpath(path, depth=0):
        # symlinks resolved with the captured posix functions (not os.path's, which the program can replace)
        if not path.startswith(sep):
            path = _getcwd() + sep + path
        parts = [p for p in path.split(sep) if p]
        done = ''
        for i in range(len(parts)):
            step = parts[i]
            if step == '.':
                continue
            if step == '..':
                done = done.rsplit(sep, 1)[0]
                continue
            cand = done + sep + step
            try:
                link = _S_ISLNK(_lstat(cand).st_mode)
            except OSError:
                link = False
            if link and depth < 40:
                target = _readlink(cand)
                base = target if target.startswith(sep) else done + sep + target
                return realpath(base + sep + sep.join(parts[i + 1:]), depth + 1)
            done = cand
        return done or sep

    def inside(path):
        if _isinstance(path, _int):
            return True
        try:
            p = realpath(_fsdecode(path))
        except Exception:
            return False
        return p == workdir or p.startswith(prefix)

    deny = frozenset(['socket.__new__', 'socket.connect', 'socket.bind', 'socket.getaddrinfo', 'socket.sendto',
        'os.kill', 'os.killpg', 'signal.pthread_kill', 'os.fork', 'os.forkpty', 'os.system', 'os.exec', 'os.posix_spawn',
        'os.spawn', 'subprocess.Popen', 'os.startfile', 'ctypes.dlopen', 'ctypes.dlsym', 'os.setuid', 'os.setgid',
        'resource.setrlimit', 'resource.prlimit', 'sys.addaudithook', 'os.putenv', 'gc.get_objects',
        'gc.get_referrers', 'gc.get_referents', 'sys.settrace', 'sys.setprofile', 'sys._current_frames', 'ctypes.call_function',
        ])
    path_args = types.MappingProxyType({'os.remove': 1, 'os.rmdir': 1, 'os.rename': 2, 'os.replace': 2, 'os.mkdir': 1,
        'os.chmod': 1, 'os.chown': 1, 'os.link': 2, 'os.symlink': 2, 'os.truncate': 1, 'os.utime': 1, 'shutil.rmtree': 1,
        'shutil.copyfile': 2, 'shutil.copytree': 2, 'shutil.move': 2, 'os.chflags': 1, 'os.setxattr': 1,
        'os.removexattr': 1, 'os.mkfifo': 1, 'os.mknod': 1})
    blocked_modules = frozenset(['_posixsubprocess', '_ctypes', 'ctypes', 'multiprocessing', '_multiprocessing', 'pty'])
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    me = os.getpid()
    environ_ok = ('/proc/self/environ', '/proc/' + _str(me) + '/environ')

    def hook(event, args):
        if event in deny:
            if event in ('os.kill', 'os.killpg') and args and args[0] == me:
                return
            raise _PermissionError('sandbox: ' + event + ' is not allowed')
        if event == 'import' and args and args[0] in blocked_modules:
            raise _ImportError('sandbox: import of ' + args[0] + ' is not allowed')
        if event == 'open' and args and not _isinstance(args[0], _int):
            path, mode, flags = args[0], args[1] or '', args[2] or 0
            writing = _any(c in _str(mode) for c in 'wax+') or (flags & write_flags) != 0
            if writing and not inside(path):
                raise _PermissionError('sandbox: writing outside the work directory is not allowed: ' + _str(path))
            text = _fsdecode(path) if _isinstance(path, (_str, _bytes)) else ''
            if text.startswith('/proc/') and text.endswith('/environ') and text not in environ_ok:
                raise _PermissionError('sandbox: reading another process environment is not allowed')
            return
        n = path_args.get(event)
        if n:
            for p in args[:n]:
                if not inside(p):
                    raise _PermissionError('sandbox: ' + event + ' outside the work directory is not allowed')
    return hook
`;

/**
 * The program wrapper `guard.py`: optionally installs a Python audit hook (the in-process layer of the sandbox), then
 * runs `program.py` as `__main__`. The hook refuses sockets, signals to other processes, new processes, native code
 * loading (ctypes), writes, deletions and renames outside the work directory, and reads of other processes'
 * `/proc/PID/environ`. It is a second layer under the kernel's (namespaces and resource limits): Python code can
 * sometimes get around an audit hook, a kernel limit it cannot.
 */
export function guardPy(workdir: string, enabled: boolean): string {
  return String.raw`
import os, sys, types
WORKDIR = ${JSON.stringify(workdir)}

${GUARD_INSTALL_PY}
if ${enabled ? 'True' : 'False'}:
    sys.addaudithook(_install(WORKDIR))
del _install
if sys.argv[1:] == ['wait']:
    # started ahead of its program (namespace mode): run once the launcher has written program.py and says go
    if os.read(0, 1) != b'G':
        os._exit(122)
sys.argv = [os.path.join(WORKDIR, 'program.py')]
with open(sys.argv[0], 'rb') as _f:
    _code = compile(_f.read(), sys.argv[0], 'exec')
del _f
# the program runs in a fresh __main__ module: this wrapper's module is not reachable as __main__
_main = types.ModuleType('__main__')
_main.__file__ = sys.argv[0]
_main.__builtins__ = __builtins__
sys.modules['__main__'] = _main
del WORKDIR
exec(_code, _main.__dict__)
`;
}
