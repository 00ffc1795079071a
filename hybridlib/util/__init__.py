"""Utilities with no knowledge of datasets or models: files, locks, seeding, devices, tensors, text, HTTP, errors.

The bottom layer of :mod:`hybridlib`: nothing here imports another part of the package except
:mod:`hybridlib.util` itself.
"""
