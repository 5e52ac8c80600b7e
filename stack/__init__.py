"""Start Recording Cache's processes from the Procfile, the one table of commands.

``make run`` (``stack.run``, through honcho), the container entrypoint
(``stack.container``) and healthchecks, ``make call``, the test suite and
``make bench`` all take a process's command from ``stack.procfile``.
``stack.local.Stack`` runs a whole deployment on free ports under a temp
folder for the tests and the bench; ``stack.ports`` has their bounded waits.
Nothing is imported here, so a container's entrypoint loads only what it uses.
"""
