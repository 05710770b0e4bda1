# The one-shot wrapper: guard.py + runner.py + this file are written as `guard.py` into a prepared sandbox's work
# directory, and its launcher (launcher.py) runs it as `python3 -I -B guard.py CONFIG_JSON [wait]` under the limits.
# CONFIG_JSON: {"workdir": the work directory, "guard": whether to install the audit hook}. It installs the hook, with
# `wait` (namespace mode, started before its program arrived) waits for the launcher's `G` on stdin, then reads
# `program.py` and `job.json` ({"module", "checks"}) from the work directory and runs them (runner.py), its tokens on
# descriptor 4 and its verdict pipe on descriptor 3.

import json

_config = json.loads(sys.argv[1])
if _config['guard']:
    sys.addaudithook(_install(_config['workdir']))
del _install
if sys.argv[2:] == ['wait']:
    # started ahead of its program (namespace mode): run once the launcher has written program.py and says go
    if os.read(0, 1) != b'G':
        os._exit(122)
_path = os.path.join(_config['workdir'], 'program.py')
with open(os.path.join(_config['workdir'], 'job.json'), 'rb') as _f:
    _job = json.loads(_f.read())
with open(_path, 'rb') as _f:
    _source = _f.read()
del _f, _config
sys.argv = [_path]
os._exit(run_program(_path, _source, _job['checks'], _job['module']))
