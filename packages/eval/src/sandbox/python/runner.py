# Runs a program in the sandbox's program process: the same code in the one-shot wrapper (oneshot.py) and in the fork
# server's program child (server.py); the TypeScript side concatenates it after guard.py (see python-source.ts).
#
# The program is run with `exec` in a fresh module named MODULE (`__main__` runs it as a script; any other name runs it
# the way openai/human-eval does, where `if __name__ == "__main__":` blocks are skipped; `__main__` is then an empty
# module, as under a harness). Then each check (a snippet) runs in the same namespace, on its own: one that raises does
# not stop the next. Checks run only when the program ran to its end.
#
# The verdict is positive evidence, not an exit status. Before anything runs, one random token per part (the program,
# then each check) arrives on descriptor 4, written by the side that judges (the fork server, or Node through the
# launcher) and read here until its end; the descriptor is then closed. Right after a part's `exec` returns, C code
# writes that part's token and a newline on descriptor 3, which leads back to the judge. A part that exits early in any
# way (SystemExit, `exit()`, `os._exit`, a signal, the time limit) never reaches that write, so its token never
# arrives; printing or writing anything else cannot make one. While a part runs, its token and those of the parts
# after it are held only by C iterators on this function's evaluation stack: in no variable, attribute or frame the
# program can name (the guard refuses the rest: `gc`'s object lists and reading `/proc/PID/mem`; trace and profile
# functions the program set are cleared before the next part is taken).

import builtins, collections, itertools, os, sys, types

VERDICT_FD, TOKEN_FD = 3, 4


def _read_tokens():
    chunks = []
    while True:
        chunk = os.read(TOKEN_FD, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(TOKEN_FD)
    return b''.join(chunks).split()


def _parts(path, source, checks, namespace):
    # one box (a one-item list) per part, holding the iterator that compiles the part, runs it and then writes its token;
    # consumed in C, so no Python frame is on the stack between the program and the write
    tokens = _read_tokens()
    if len(tokens) != 1 + len(checks):
        raise RuntimeError('sandbox: %d tokens for %d parts' % (len(tokens), 1 + len(checks)))
    names = [path] + ['<check %d>' % (i + 1) for i in range(len(checks))]
    return iter([[itertools.chain(
        map(exec, map(compile, [text], [name], ['exec'], [0], [True]), [namespace]),
        map(os.write, [VERDICT_FD], [token + b'\n']),
    )] for text, name, token in zip([source] + list(checks), names, tokens)])


def exit_code(value):
    # what Python's own exit does with SystemExit's code
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xff
    try:
        sys.stderr.write(str(value) + '\n')
    except BaseException:
        pass
    return 1


def run_program(path, source, checks, module_name):
    # Runs the program (bytes, shown as PATH in tracebacks) as module MODULE_NAME, then the checks; returns the exit
    # status a script would have (0 when the program ran to its end; the checks do not change it).
    import atexit
    drain, settrace, setprofile = collections.deque, sys.settrace, sys.setprofile
    module = types.ModuleType(module_name)
    module.__file__ = path
    module.__builtins__ = builtins
    if module_name != '__main__':
        sys.modules['__main__'] = types.ModuleType('__main__')
    sys.modules[module_name] = module
    status = None
    for box in _parts(path, source, checks, module.__dict__):
        ok, code = False, 1
        try:
            drain(box.pop(), 0)
            ok, code = True, 0
        except SystemExit as e:
            code = exit_code(e.code)
        except BaseException:
            kind, value, tb = sys.exc_info()
            try:
                tb = value.with_traceback(tb.tb_next).__traceback__  # from the program's frame on, without this one
                sys.excepthook(kind, value, tb)
            except BaseException:
                pass
            del kind, value, tb
        settrace(None)
        setprofile(None)
        if status is None:
            status = code
            if not ok:
                break
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 120
    return status
