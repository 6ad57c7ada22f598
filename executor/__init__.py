"""A reference Python executor for the code_interpreter tool, for trusted environments only.

    server.py    the HTTP API (POST /run with a Bearer key), served by `manage.py run_executor`
    sandbox.py   one snippet in one fresh, limited subprocess: run_snippet(code, *, seconds, limits)
    runner.py    the child side: lowers its limits, gives up root and the network, refuses
                 subprocesses and ctypes, runs the cell

Not part of the gateway: it imports nothing of Django or of the gateway's apps, so it can run on a
machine of its own. Its limits (docs/REFERENCE.md) keep an honest snippet from hurting the machine
by accident; they do not contain a hostile one. Run it for untrusted code only inside a container
or VM with no network and nothing else in it.
"""
