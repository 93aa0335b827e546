"""Experiments built on the library: `reproduce` (the paper's stitching table) and `study` (studies around it).

They are clients of the library: nothing outside this folder and the command line imports them.
"""
