"""Checking the reader's exercises: one command, ``vla-ch2 check 2.x.N``, for all four.

The files split by concern and read top to bottom:

* :mod:`~vla_ch2.checking.command`: the command itself (which exercise, which file, which grader);
* :mod:`~vla_ch2.checking.inputs`: reading what the reader hands in (answer text, exercise modules);
* :mod:`~vla_ch2.checking.report`: the report, ``results.json`` and the exit status;
* :mod:`~vla_ch2.checking.harness`, :mod:`~vla_ch2.checking.ex_2x1`, :mod:`~vla_ch2.checking.ex_2x2`:
  graded tests for the coding exercises, run against the reader's module with spies on the simulator;
* :mod:`~vla_ch2.checking.rubrics`, :mod:`~vla_ch2.checking.sentences`, :mod:`~vla_ch2.checking.worksheet`:
  the free-text graders of the written exercises and the rubrics they read;
* :mod:`~vla_ch2.checking.agreement`: how often those graders agree with an instructor's hand grading.

Which cause a sentence may give for a symptom is not decided here: it is the
failure taxonomy's (:mod:`vla_ch2.taxonomy`), shared with the pages and the predicates.
"""
