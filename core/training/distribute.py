"""Training beyond one device with ``tf.distribute`` (no scheduler of our own): which strategy a process trains
under, which task is the chief, and ``heartseg train --local-workers N`` (N worker processes on this machine).

Strategy (:func:`training_strategy`, one per process, created before TensorFlow runs any op):

* ``TF_CONFIG`` describes a cluster of more than one task -> ``tf.distribute.MultiWorkerMirroredStrategy``: every
  worker runs the same command; gradients are all-reduced across workers every step;
* else more than one local GPU -> ``tf.distribute.MirroredStrategy`` over them (``HEARTSEG_CPU_REPLICAS=N``:
  over N logical CPU devices instead, to try or test the mirrored arithmetic without GPUs);
* else None: plain Keras on the default device (the single-machine path, unchanged).

Keras 3 on the TensorFlow backend honours these strategies the Keras 2 way: a model built and compiled inside
``strategy.scope()`` records the strategy (``keras.src.backend.tensorflow.trainer``) and ``model.fit`` runs every
step through ``strategy.run`` and accepts a ``tf.distribute`` distributed dataset. ``keras.distribution`` (Keras
3's own data/model parallel API) is JAX-only and is not used.

Rules of a distributed run: ``batch_size`` is the *global* batch (split evenly across replicas, so it must be a
multiple of their number) and the learning rate is used as given, not scaled: the same command on 1 or N workers
takes the same optimiser steps over the same global batches (if you raise the batch to keep more workers busy,
scaling the learning rate is up to you). Only the chief (task ``chief``, else ``worker`` 0) writes the model,
history, registry entry and OpenVINO copy; the other workers write their (identical) checkpoints to a temporary
folder that is removed. Each worker keeps a ``BackupAndRestore`` backup in ``<out>/backup/<task>-<index>/`` (its own
folder: the workers may share a disk) so that rerunning the same command after a worker was killed resumes at the
last finished epoch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from core.errors import HeartsegError
from core.types import CancelToken

#: The hidden ``heartseg train`` flag of a process started by ``--local-workers`` (value: the launcher's pid).
WORKER_FLAG = "--local-worker-of"

#: ``HEARTSEG_CPU_REPLICAS=N`` (N > 1, no cluster, at most one GPU): ``MirroredStrategy`` over N logical CPU
#: devices of this process — the arithmetic of N replicas on one machine (the tests' reference for N workers).
CPU_REPLICAS_ENV = "HEARTSEG_CPU_REPLICAS"

_STRATEGY = {}


def tf_config() -> Optional[dict]:
    """The parsed ``TF_CONFIG`` environment variable (None when unset or empty); a malformed one is an error."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster = config["cluster"]
        task = config["task"]
        kind, index = str(task["type"]), int(task["index"])
        if not isinstance(cluster, dict) or index >= len(cluster[kind]):
            raise ValueError
    except (ValueError, KeyError, TypeError, IndexError):
        raise HeartsegError("TF_CONFIG is not a valid cluster description (needs {\"cluster\": {\"worker\": "
                            "[\"host:port\", ...]}, \"task\": {\"type\": \"worker\", \"index\": i}})") from None
    return config


def cluster_size() -> int:
    """Number of training tasks (chief + workers) in ``TF_CONFIG``; 1 without a cluster."""
    config = tf_config()
    if config is None:
        return 1
    return sum(len(config["cluster"].get(kind, [])) for kind in ("chief", "worker"))


def is_multi_worker() -> bool:
    return cluster_size() > 1


def task_name() -> str:
    """``"<type>-<index>"`` of this task (``"chief-0"`` without a cluster)."""
    config = tf_config()
    if config is None or not is_multi_worker():
        return "chief-0"
    return f"{config['task']['type']}-{int(config['task']['index'])}"


def is_chief() -> bool:
    """True for the task that writes the results: ``chief``, else ``worker`` 0 (always True without a cluster)."""
    config = tf_config()
    if config is None or not is_multi_worker():
        return True
    kind, index = config["task"]["type"], int(config["task"]["index"])
    if "chief" in config["cluster"]:
        return kind == "chief"
    return kind == "worker" and index == 0


def training_strategy():
    """The process's ``tf.distribute`` strategy (module docstring), created once; None = no strategy needed.

    Call it before TensorFlow runs any op when ``TF_CONFIG`` names a cluster (``heartseg train`` does, first
    thing): ``MultiWorkerMirroredStrategy`` must come first and a process can hold only one.
    """
    if "strategy" in _STRATEGY:
        return _STRATEGY["strategy"]
    import tensorflow as tf  # lazy: TensorFlow loads only to train

    if is_multi_worker():
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _patch_keras_multi_worker_logs()
    elif len(tf.config.list_physical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
    elif int(os.environ.get(CPU_REPLICAS_ENV, "0") or 0) > 1:  # the mirrored path on a CPU-only machine
        n = int(os.environ[CPU_REPLICAS_ENV])
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])
    else:
        strategy = None
    _STRATEGY["strategy"] = strategy
    return strategy


def _patch_keras_multi_worker_logs() -> None:
    """Make Keras 3's ``fit`` work under ``MultiWorkerMirroredStrategy`` (verified with Keras 3.15 / TF 2.21).

    Its train step reduces the per-step logs with ``reduce_per_replica(..., reduction="auto")`` = ``"mean"``, which
    under a multi-worker strategy calls ``strategy.reduce("MEAN", value, axis=0)`` on every scalar log and fails
    ("Invalid reduction dimension 0 for input with 0 dimensions"). This wraps that module function so the mean
    is taken across workers with ``axis=None`` (one all-reduce per log, run by every worker alike); every other
    case goes to Keras unchanged. The epoch logs (what callbacks and history see) are the metric variables' own
    all-reduced results either way.
    """
    import tensorflow as tf  # lazy: TensorFlow loads only to train
    from keras.src.backend.tensorflow import trainer as tf_trainer  # lazy: Keras loads only to train

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_heartseg_multi_worker", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._heartseg_multi_worker = True
    tf_trainer.reduce_per_replica = reduce_per_replica


# ------------------------------------------------------------------------------------------- local workers
def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on the loopback interface (bound, read, released)."""
    sockets, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def local_tf_configs(n: int, ports: Optional[Sequence[int]] = None) -> list[dict]:
    """The ``TF_CONFIG`` of each of ``n`` workers on this machine (worker 0 is the chief)."""
    ports = list(ports) if ports is not None else free_ports(n)
    workers = [f"127.0.0.1:{p}" for p in ports]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(n)]


def worker_argv(argv: Sequence[str]) -> list[str]:
    """``heartseg train`` arguments for a worker: ``argv`` (the arguments after ``train``) without
    ``--local-workers N`` (a worker must not start workers of its own) and without a previous worker flag."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--local-workers", WORKER_FLAG):
            skip = True
            continue
        if arg.startswith(("--local-workers=", WORKER_FLAG + "=")):
            continue
        out.append(arg)
    return out


def exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """In a ``--local-workers`` child: exit as soon as the launcher is gone (no orphaned worker keeps a port)."""

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="heartseg-parent-watch", daemon=True).start()


_PEER_LOST = ("UnavailableError", "AbortedError", "DeadlineExceededError", "CancelledError")


def run_as_worker(body, log) -> None:
    """Run ``body()`` (a command of one multi-worker task) and end the process with ``os._exit``.

    A task whose training failed can otherwise hang at interpreter exit (TensorFlow's collective and coordination
    threads), alive to its peers and its launcher while doing nothing: the run would never fail. Errors are
    worded like :func:`core.cli.main.main` (one line for a :class:`HeartsegError`, exit 2)."""
    import traceback

    try:
        code = int(body() or 0)
    except HeartsegError as exc:
        log.error(f"heartseg train: error: {exc}")
        code = 2
    except KeyboardInterrupt:
        log.error("heartseg train: interrupted")
        code = 130
    except BaseException as exc:
        if type(exc).__name__ in _PEER_LOST:  # a collective aborted: another task died or was stopped
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            log.error(f"heartseg train: error: lost contact with another worker ({type(exc).__name__}: {first})")
        else:
            traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def _stop(procs, grace: float = 5.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local_workers(train_args: Sequence[str], n: int, out_dir: Path, *, cancel: Optional[CancelToken] = None,
                      stream=None, poll: float = 0.2) -> int:
    """Run ``heartseg train <train_args>`` as ``n`` worker processes of one local cluster and wait for them.

    Each worker gets a generated ``TF_CONFIG`` (free loopback ports; worker 0 is the chief) and its own process
    group (so a terminal's Ctrl+C reaches only this launcher). The chief's output is passed through to ``stream``;
    worker ``i``'s goes to ``out_dir/workers/worker-<i>.log``. Returns 0 when all finished, 130 when ``cancel``
    was set (all workers stopped; rerunning resumes from the last epoch's backup). A worker that dies stops the
    others at once and raises one :class:`HeartsegError` line naming it and its log.
    """
    if n < 2:
        raise HeartsegError(f"--local-workers needs at least 2 workers (got {n})")
    stream = stream or sys.stderr
    logs_dir = Path(out_dir) / "workers"
    logs_dir.mkdir(parents=True, exist_ok=True)
    configs = local_tf_configs(n)
    procs, logs, forwarding = [], [], {"on": True}
    if threading.current_thread() is threading.main_thread():  # a SIGTERM to the launcher stops the workers too
        signal.signal(signal.SIGTERM, _raise_exit)
    command = [sys.executable, "-m", "core.cli", "train", *train_args, WORKER_FLAG, str(os.getpid())]
    try:
        for i, config in enumerate(configs):
            env = dict(os.environ, TF_CONFIG=json.dumps(config))
            log = None if i == 0 else open(logs_dir / f"worker-{i}.log", "wb")  # noqa: SIM115 (closed below)
            logs.append(log)
            procs.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE if i == 0 else log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
            where = "output below" if i == 0 else f"log {logs_dir / f'worker-{i}.log'}"
            print(f"local worker {i} of {n}{' (chief)' if i == 0 else ''}: pid {procs[-1].pid}, "
                  f"{config['cluster']['worker'][i]}, {where}", file=stream, flush=True)

        def forward(pipe):
            for raw in iter(pipe.readline, b""):
                if forwarding["on"]:
                    stream.write(raw.decode("utf-8", "replace"))
                    stream.flush()

        reader = threading.Thread(target=forward, args=(procs[0].stdout,), daemon=True)
        reader.start()
        while True:
            if cancel is not None and cancel.cancelled:
                forwarding["on"] = False
                _stop(procs)
                print(f"stopped all {n} local workers; rerun the same command to resume from the last finished "
                      f"epoch", file=stream, flush=True)
                return 130
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:  # the root cause first: a worker killed by a signal, before one that lost its peer
                i = min(failed, key=lambda k: (codes[k] >= 0, k))
                forwarding["on"] = False
                _stop(procs)
                where = "its output is above" if i == 0 else f"its log: {logs_dir / f'worker-{i}.log'}"
                raise HeartsegError(f"local worker {i} of {n} (pid {procs[i].pid}) died ({_describe_exit(codes[i])})"
                                    f"; stopped the other worker(s) — {where}")
            if all(c == 0 for c in codes):
                reader.join(timeout=5)
                return 0
            time.sleep(poll)
    except BaseException:
        forwarding["on"] = False
        _stop(procs)
        raise
    finally:
        for log in logs:
            if log is not None:
                log.close()


__all__ = ["CPU_REPLICAS_ENV", "WORKER_FLAG", "cluster_size", "exit_with_parent", "free_ports", "is_chief",
           "is_multi_worker", "local_tf_configs", "run_as_worker", "run_local_workers", "task_name", "tf_config",
           "training_strategy", "worker_argv"]
