"""The inputs of `cornernet-predict`: files, folders, glob patterns and videos.

TensorFlow-free (the listing runs before the model loads). Folders are walked
recursively in sorted order; hidden files and folders (a leading dot, such as
macOS' `._photo.jpg` resource forks) are left out. A folder or pattern keeps
only the files whose extension is an image or video one; the other files are
counted as skipped, not failed. A file named on the command line is always
tried, whatever its extension, so that a mislabelled image still gets a
message naming it.

Every input has a path relative to what named it (the folder, the pattern's
leading folders, or the file name alone), which the outputs mirror.
"""

from __future__ import annotations

import dataclasses
import glob
import os

from cornernet_tf.utils.fs import not_a_file

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Listing",
    "Source",
    "list_inputs",
    "output_stem",
]

# Those `cornernet_tf.images` reads (tests check that the two agree).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Containers OpenCV's FFmpeg backend reads.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")

_GLOB_MAGIC = ("*", "?", "[")


@dataclasses.dataclass(frozen=True)
class Source:
    """One image or video to run on.

    Attributes:
        path: the file, as found (joined to the folder or pattern given).
        relative: its path relative to the folder or pattern's base, with "/".
        kind: "image" or "video" (from the extension).
    """

    path: str
    relative: str
    kind: str


@dataclasses.dataclass
class Listing:
    """What the arguments name.

    Attributes:
        sources: the files to run on, in argument order, each folder sorted.
        errors: `{"file", "error"}` for arguments that name nothing usable.
        skipped: files of a folder or pattern without an image or video extension.
    """

    sources: list[Source] = dataclasses.field(default_factory=list)
    errors: list[dict] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def kind_of(path: str) -> str | None:
    """ "image", "video" or None, from the file extension (case-insensitive)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(folder: str, exclude: str | None = None) -> list[str]:
    """Every non-hidden file under `folder`, sorted by path (symlinked folders not followed).

    `exclude`, a real path, is a folder left out (the command's own output).
    """
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [
            d for d in dirs if not _hidden(d) and os.path.realpath(os.path.join(root, d)) != exclude
        ]
        found += [os.path.join(root, f) for f in files if not _hidden(f)]
    return sorted(found, key=lambda p: os.path.relpath(p, folder).split(os.sep))


def _inside(path: str, folder: str | None) -> bool:
    if folder is None:
        return False
    real = os.path.realpath(path)
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _glob_base(pattern: str) -> str:
    """The pattern's leading folders without wildcards (`photos/2024` of `photos/2024/*/*.jpg`)."""
    head = []
    for part in pattern.split(os.sep):
        if any(m in part for m in _GLOB_MAGIC):
            break
        head.append(part)
    base = os.sep.join(head)
    return base or (os.sep if pattern.startswith(os.sep) else ".")


def _add_files(listing: Listing, files, base: str) -> int:
    count = 0
    for path in files:
        kind = kind_of(path)
        if kind is None:
            listing.skipped.append(path)
            continue
        reason = not_a_file(path)  # a pipe or device would block or never end
        if reason is not None:
            listing.errors.append({"file": path, "error": f"{reason}; pass image or video files"})
            continue
        relative = os.path.relpath(path, base).replace(os.sep, "/")
        listing.sources.append(Source(path, relative, kind))
        count += 1
    return count


def list_inputs(arguments, exclude: str | os.PathLike | None = None) -> Listing:
    """The images and videos that command-line arguments name.

    Args:
        arguments: file paths, folder paths and glob patterns (`*`, `?`,
            `[...]`; `**` matches any depth of folders).
        exclude: a folder whose files are never inputs (the output folder,
            when it lies inside an input folder).

    Returns:
        A `Listing`; a missing file, a folder without images or videos and a
        pattern matching none are errors naming the argument and the fix.
    """
    listing = Listing()
    exclude = os.path.realpath(exclude) if exclude is not None else None
    wanted = "/".join(s.lstrip(".") for s in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    for argument in arguments:
        if os.path.isdir(argument):
            if not _add_files(listing, _walk(argument, exclude), argument):
                listing.errors.append(
                    {
                        "file": argument,
                        "error": f"the folder holds no image or video files ({wanted}); pass a "
                        "folder of images or videos",
                    }
                )
        elif any(m in argument for m in _GLOB_MAGIC) and not os.path.lexists(argument):
            base = _glob_base(argument)
            matches = [
                m for m in sorted(glob.glob(argument, recursive=True)) if not _inside(m, exclude)
            ]
            files = []
            for match in matches:
                files += _walk(match, exclude) if os.path.isdir(match) else [match]
            if not _add_files(listing, files, base):
                listing.errors.append(
                    {
                        "file": argument,
                        "error": f"the pattern matches no image or video files ({wanted}); "
                        "check the pattern (quote it so that the shell does not expand it)",
                    }
                )
        else:
            reason = not_a_file(argument)
            if reason is not None:
                listing.errors.append(
                    {
                        "file": argument,
                        "error": f"{reason}; pass an image or video file or a folder",
                    }
                )
                continue
            kind = kind_of(argument) or "image"
            listing.sources.append(Source(argument, os.path.basename(argument), kind))
    return listing


def output_stem(relative: str, taken: set) -> str:
    """`relative` without its extension, with `_2`, `_3`... when another input has it.

    Compared without case, so that `a.JPG` and `a.png` do not write the same
    files on a case-insensitive file system.
    """
    base = os.path.splitext(relative)[0] or "image"
    stem, n = base, 1
    while stem.casefold() in taken:
        n += 1
        stem = f"{base}_{n}"
    taken.add(stem.casefold())
    return stem
