"""``python -m sepconv.backends.native``: build the native kernel now (the Makefile's install step), say where.

Never fails: where the kernel cannot be built, it prints why, and sepconv runs its other CPU paths.
"""

from .build import cache_dir, load_error

error = load_error()
print(f"sepconv native kernel: {'ready in ' + str(cache_dir()) if error is None else error}")
