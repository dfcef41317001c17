"""The teaching-model factory, apart from the chapter's concepts.

How the embedded CPU teaching model was made: a scripted expert that reads the
simulator's privileged state (:mod:`~vla_ch2.factory.expert`), demonstrations
recorded from it through the chapter's own image conventions
(:mod:`~vla_ch2.factory.demos`), and training and export to an OpenVLA-shaped
checkpoint (:mod:`~vla_ch2.factory.teaching_model`, ``python -m
vla_ch2.factory.teaching_model --help``). Nothing in the chapter's loop,
drills, predicates or sweep imports it.
"""
