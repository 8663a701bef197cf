"""Which executables a benchmark script measures: one rule for scripts/bench_spec, bench_serving,
bench_threads and bench_tp (scripts/bench and scripts/run follow it in shell).

- No --build: build/ is configured as scripts/bench configures it (Release, the student tree's
  exercise switch off) and the script's targets are brought up to date, so the figures are this
  checkout's and never a Debug or sanitizer build's left there by an earlier `cmake -B build`.
- --build DIR: DIR's executables are used as they are (an older build, the tests' own build);
  missing ones are an error naming them, and a build that is not Release or RelWithDebInfo, or
  has the sanitizers on, is measured with a warning that says so.
"""
import os
import subprocess
import sys

FAST_BUILD_TYPES = ("Release", "RelWithDebInfo")


def cache_value(build, key):
    """The value of KEY in BUILD/CMakeCache.txt, or None when the folder has no cache or no KEY."""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                name, sep, value = line.rstrip("\n").partition("=")
                if sep and name.split(":")[0] == key:
                    return value
    except OSError:
        pass
    return None


def build_kind(build):
    """What a build folder was configured as, in words: e.g. 'Release' or 'Debug, sanitizers on'."""
    kind = cache_value(build, "CMAKE_BUILD_TYPE") or "no build type"
    if (cache_value(build, "LLM_SANITIZE") or "OFF").upper() in ("ON", "1", "TRUE", "YES"):
        kind += ", sanitizers on"
    return kind


def executables(root, build, targets, script, hint="a stage this machine lacks the packages for? "
                                                     "scripts/setup installs them"):
    """The build folder to measure, its executables up to date as the rule above says.

    root: the repository; build: the --build argument or None; targets: paths of the executables
    relative to the build folder; script: the calling script's name, for messages; hint: what to
    say when this machine's build has no such target. Exits with status 2 when one is missing.
    """
    names = [os.path.basename(t) for t in targets]
    if build is None:
        build = os.path.join(root, "build")
        os.makedirs(build, exist_ok=True)
        print(f"{script}: building {', '.join(names)} in {build} (Release)", flush=True)
        log = os.path.join(build, "configure.log")
        with open(log, "w") as f:
            r = subprocess.run(["cmake", "-S", root, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                                "-DLLM_EXERCISE_SWITCH=OFF"], stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            sys.stdout.write(open(log).read())
            sys.exit(f"{script}: configuring {build} failed (log above)")
        # Only the targets this configuration has (stage 07 needs MPI, stage 08 cpp-httplib).
        known = subprocess.run(["cmake", "--build", build, "--target", "help"], capture_output=True,
                               text=True).stdout
        names = [n for n in names if f" {n}" in known or f"{n}:" in known]
        if names:
            subprocess.run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target"] + names,
                           check=True, stdout=subprocess.DEVNULL)
    else:
        build = os.path.abspath(build)
        missing = [t for t in targets if not os.path.exists(os.path.join(build, t))]
        if missing:
            print(f"{script}: --build {build}: {', '.join(missing)} not built there "
                  f"(cmake --build {build} --target {' '.join(os.path.basename(t) for t in missing)})",
                  file=sys.stderr)
            sys.exit(2)
        kind = build_kind(build)
        if kind not in FAST_BUILD_TYPES:
            print(f"{script}: warning: --build {build} is a {kind} build; its figures are not the "
                  f"optimised engine's (leave out --build to measure build/ as Release)", file=sys.stderr)
    absent = [t for t in targets if not os.path.exists(os.path.join(build, t))]
    if absent:
        print(f"{script}: {', '.join(absent)} not built in {build} ({hint})", file=sys.stderr)
        sys.exit(2)
    return build
