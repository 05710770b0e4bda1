# The sandbox's audit hook (its in-process layer), built by `_install(workdir)`. Shared by the one-shot wrapper
# (oneshot.py, run by a prepared sandbox) and the fork server (server.py), whose program process installs it just before
# running its program; the TypeScript side concatenates this file in front of theirs (see python-source.ts).
#
# The hook refuses sockets, signals to other processes, new processes, native code loading (ctypes), writes, deletions
# and renames outside the work directory, opening a directory outside it (a directory descriptor would let the `*at`
# calls' relative paths escape the checks below), reads of other processes' `/proc/PID/environ`, reads of any
# process's memory (`/proc/PID/mem`: the runner's verdict tokens live there, see runner.py), the ways to reach the hook
# object (gc's object lists, `sys._current_frames`) and callbacks that run in every thread or on every line without
# being set in that thread (`sys.monitoring`, the *allthreads trace setters). Trace and profile functions of the
# program's own thread are allowed: CPython does not trace audit hooks, and doctest (among others) sets them. It is a
# second layer under the kernel's (namespaces and resource limits): Python code can sometimes get around an audit hook,
# a kernel limit it cannot.

import os, types

def _install(workdir):
    # Everything the hook reads is captured here, in its closure, as immutable values or builtin functions: the
    # program can rebind module globals, builtins or os functions, and the hook does not see it. The ways to reach
    # the hook object itself (gc's object lists, other threads' frames) are refused; CPython runs audit hooks untraced.
    import posix, stat
    _isinstance, _str, _bytes, _int, _any, _PermissionError, _ImportError = isinstance, str, bytes, int, any, PermissionError, ImportError
    _range, _len = range, len
    _lstat, _stat, _readlink, _getcwd, _S_ISLNK, _S_ISDIR, _fsdecode = posix.lstat, posix.stat, posix.readlink, posix.getcwd, stat.S_ISLNK, stat.S_ISDIR, os.fsdecode
    _normpath, _join, _dirname = os.path.normpath, os.path.join, os.path.dirname
    sep = '/'
    prefix = workdir + sep

    def realpath(path, depth=0):
        # symlinks resolved with the captured posix functions (not os.path's, which the program can replace)
        if not path.startswith(sep):
            path = _getcwd() + sep + path
        parts = [p for p in path.split(sep) if p]
        done = ''
        for i in _range(_len(parts)):
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

    def resolved(path):
        # the real path of a path argument, '' when it cannot be read
        try:
            return realpath(_fsdecode(path))
        except Exception:
            return ''

    def within(p):
        return p == workdir or p.startswith(prefix)

    def inside(path):
        return _isinstance(path, _int) or within(resolved(path))

    deny = frozenset(['socket.__new__', 'socket.connect', 'socket.bind', 'socket.getaddrinfo', 'socket.sendto',
        'os.kill', 'os.killpg', 'signal.pthread_kill', 'os.fork', 'os.forkpty', 'os.system', 'os.exec', 'os.posix_spawn',
        'os.spawn', 'subprocess.Popen', 'os.startfile', 'ctypes.dlopen', 'ctypes.dlsym', 'os.setuid', 'os.setgid',
        'resource.setrlimit', 'resource.prlimit', 'sys.addaudithook', 'os.putenv', 'gc.get_objects',
        'gc.get_referrers', 'gc.get_referents', 'sys._current_frames', 'ctypes.call_function',
        'sys.monitoring.register_callback', 'sys._settraceallthreads', 'sys._setprofileallthreads',
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
            real = resolved(path)
            if writing and not within(real):
                raise _PermissionError('sandbox: writing outside the work directory is not allowed: ' + _str(path))
            text = _fsdecode(path) if _isinstance(path, (_str, _bytes)) else ''
            if text.startswith('/proc/') and text.endswith('/environ') and text not in environ_ok:
                raise _PermissionError('sandbox: reading another process environment is not allowed')
            if real.startswith('/proc/') and real.endswith('/mem'):
                raise _PermissionError('sandbox: reading process memory is not allowed')
            if not within(real):
                try:
                    directory = _S_ISDIR(_stat(real).st_mode)
                except OSError:
                    directory = False
                if directory:
                    raise _PermissionError('sandbox: opening a directory outside the work directory is not allowed: ' + _str(path))
            return
        n = path_args.get(event)
        if n:
            for p in args[:n]:
                if not inside(p):
                    raise _PermissionError('sandbox: ' + event + ' outside the work directory is not allowed')
    return hook
