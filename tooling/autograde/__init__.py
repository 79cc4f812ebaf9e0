"""Autograding the assignments so that only correct code scores (``assignments/README.md``, "How scores are computed").

* ``judge.py`` - scores each graded cell outside the student's kernel, in a process that never runs student code;
* ``runner.py`` - the only place the student's code runs for a score: outputs for the judge's inputs;
* ``cases.py`` - what the judge asks of each graded cell of the six assignments;
* ``sandbox.py`` (and ``_enter.py``) - runs student code as an unprivileged user, without network, with the
  course folder hidden;
* ``execute.py`` - executes a submission for its feedback, inside the sandbox;
* ``restore.py`` - restores locked cells, warning only about those a student changed;
* ``nbgrader_hooks.py`` - the preprocessors ``assignments/nbgrader_config.py`` puts into ``nbgrader autograde``.
"""
