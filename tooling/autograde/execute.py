"""Execute a submitted notebook for its feedback, inside the sandbox: ``python -I execute.py IN OUT TIMEOUT``.

The outputs it produces are what the student reads in the feedback (the
checks' messages, the figures); they decide no score (``judge.py`` does). A
cell that runs past ``TIMEOUT`` seconds is stopped and the next one runs; a
kernel that dies (``os._exit``, a crash) ends the run with what was executed
so far and a note in the cell where it died. Its kernel talks to it over Unix
sockets in the working folder (the sandbox has no network, not even loopback).
"""

import sys

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError


def note(cell, text: str) -> None:
    cell.setdefault("outputs", []).append(nbformat.v4.new_output("stream", name="stdout", text=text + "\n"))


def main() -> None:
    src, dst, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
    nb = nbformat.read(src, as_version=4)
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip="kernel")
    client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                            record_timing=False, resources={"metadata": {"path": "."}},
                            error_on_timeout={"ename": "CellTimeoutError", "evalue": "",
                                              "traceback": [f"The cell did not finish within {timeout} s "
                                                            "and was stopped."]})
    try:
        client.execute()
    except DeadKernelError:
        running = [c for c in nb.cells if c.get("cell_type") == "code" and not c.get("outputs")
                   and c.get("execution_count") is None]
        if running:
            note(running[0], "The Python kernel died while this notebook ran (a crash, or os._exit); the cells "
                             "from here on were not run.")
    nbformat.write(nb, dst)


if __name__ == "__main__":
    main()
