"""Build hook for the optional C part of geo (geo._h3fast); metadata lives in pyproject.toml.

The extension needs only a C compiler and Python's headers. If it cannot be
built, installation still succeeds and geo.cells falls back to h3-py.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

H3LIB = Path("geo") / "_h3fast_vendor" / "h3lib"


class OptionalBuildExt(build_ext):  # type: ignore[misc]
    """Build extensions, but never fail the install over them."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing or broken: keep the pure fallback
            print(f"warning: geo._h3fast not built ({exc}); geo.cells uses h3-py instead")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: {ext.name} not built ({exc}); geo.cells uses h3-py instead")


h3fast = Extension(
    "geo._h3fast",
    sources=["geo/_h3fast.c", *sorted(str(p) for p in (H3LIB / "lib").glob("*.c"))],
    include_dirs=[str(H3LIB / "include")],
    define_macros=[("H3_HAVE_VLA", "1"), ("BUILDING_H3", "1")],
    # Plain IEEE double arithmetic (no FMA contraction, no fast-math) so the
    # vendored H3 computes exactly what h3-py's copy does; -O3 and no errno on
    # sqrt let the batch loops vectorise; hidden symbols so the vendored H3
    # never clashes with h3-py's copy in the same process.
    extra_compile_args=[
        "-O3",
        "-fno-math-errno",
        "-fno-trapping-math",
        "-std=gnu99",
        "-ffp-contract=off",
        "-fvisibility=hidden",
        "-pthread",
    ],
    extra_link_args=["-pthread"],
    libraries=["m"],
)

setup(ext_modules=[h3fast], cmdclass={"build_ext": OptionalBuildExt})
