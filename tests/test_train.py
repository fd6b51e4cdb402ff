"""`cornernet-train` and `cornernet_tf.training.train`: errors, strategies, resume.

The units of the package have their own files (`test_training_*.py`). The
end-to-end tests here run the script in subprocesses (their own TensorFlow
runtime: logical devices, TF_CONFIG, SIGKILL) on the shared shapes dataset
with a very small hourglass at 63x63 input, so that each run is tracing time
plus a few fast steps; they are marked slow (still run in CI).
"""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf import training
from cornernet_tf.cli import train as train_cli
from cornernet_tf.data import shapes
from cornernet_tf.spec.config import Config, ConfigError, load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "train.py")
CONFIG = os.path.join(REPO, "configs", "shapes_tiny.yaml")

# A very small network and input keep tracing and steps short.
SMALL = [
    "data.input_size=63",
    "data.output_size=16",
    "data.border=16",
    "train.batch_size=4",
    "train.checkpoint_every=2",
    "train.log_every=1",
    # The XLA train step is tested in test_train_step.py; compiling it in every
    # script run here would double these tests' time.
    "train.jit_compile=false",
    # One stack of one level: these tests are about the script, and tracing the
    # train step is most of a run's time (a run of a four-level hourglass takes
    # a quarter longer).
    "model.overrides={num_stacks: 1, dims: [16, 16], modules: [1, 1], "
    "pre_dim: 8, cnv_dim: 16, pool_dim: 8}",
]
TIMEOUT = 600


def _command(data_dir, model_dir, *overrides, strategy="auto"):
    command = [sys.executable, SCRIPT, "--config", CONFIG, "--data-dir", str(data_dir)]
    command += ["--model-dir", str(model_dir), "--strategy", strategy, "--verbose", "2"]
    for item in [*SMALL, *overrides]:
        command += ["--set", item]
    return command


def _console(data_dir, model_dir, *overrides):
    """`_command` as `python -m cornernet_tf.cli.train`: the console script's code path."""
    return [
        sys.executable,
        "-m",
        "cornernet_tf.cli.train",
        *_command(data_dir, model_dir, *overrides)[2:],
    ]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO, **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run(command, **kwargs):
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, env=_env(), cwd=REPO, **kwargs
    )


def _summary(model_dir):
    with open(os.path.join(model_dir, "summary.json")) as f:
        return json.load(f)


def _last_epoch_logs(stdout):
    """Metric values of the last `verbose=2` epoch line ("... - loss: 1.2 - focal: ...")."""
    line = [ln for ln in stdout.splitlines() if "/step - " in ln][-1]
    values = {}
    for part in line.split(" - "):
        name, sep, value = part.partition(": ")
        if sep:
            values[name.strip()] = float(value)
    return values


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ fast


def test_script_offers_the_package_strategies():
    assert train_cli.STRATEGIES == training.STRATEGIES


def test_default_evaluate_fn_only_when_evaluations_are_configured(shapes_root):
    assert training.default_evaluate_fn(Config(), shapes_root) is None  # eval_every=0
    config = load_config(CONFIG, ["train.eval_every=5"])
    assert callable(training.default_evaluate_fn(config, shapes_root))


# ------------------------------------------------------- the script: bad input


@pytest.mark.slow
def test_bad_image_limit_stops_the_run_with_one_readable_line(shapes_root, tmp_path):
    # Every training image corrupt, at most one allowed: the pipeline's assertion
    # fails inside the train step, and the script reports the project's message
    # (not TensorFlow's graph-execution dump) on one line, naming a file.
    data = tmp_path / "data"
    shutil.copytree(shapes_root, data)
    corrupt = sorted((data / "train2017").iterdir())
    for path in corrupt:
        path.write_bytes(b"not an image")
    out = tmp_path / "run"
    proc = _run(
        _command(data, out, "train.steps=2", "data.max_bad_images=1", "train.jit_compile=true")
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-4000:]
    error = errors[0]
    assert error.startswith(
        "error: cornernet_tf.data: more than max_bad_images=1 bad images; the last one is "
    )
    assert any(f" {path} unsupported format " in error for path in corrupt), error
    assert "- fix or remove the bad files, or raise `max_bad_images`." in error
    assert error.endswith(
        f"(training stopped at step 0; the last checkpoint is in {out / 'checkpoints'})"
    )
    for fragment in ("Graph execution error", "assertion failed", "[[", "node "):
        assert fragment not in error
    assert not (out / "model.keras").exists()


@pytest.mark.parametrize(
    ("overrides", "file_text", "expected"),
    [
        ([], "train:\n  stepz: 3\n", "unknown key 'stepz' in section 'train'"),
        (["train.steps=many"], "", "--set train.steps=many: train.steps must be an integer"),
    ],
)
def test_bad_config_fails_before_any_work(tmp_path, shapes_root, overrides, file_text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(file_text)
    out = tmp_path / "out"
    command = [sys.executable, SCRIPT, "--config", str(config), "--data-dir", str(shapes_root)]
    command += ["--model-dir", str(out)]
    for item in overrides:
        command += ["--set", item]
    proc = _run(command)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0  # one line
    if not overrides:
        assert str(config) in proc.stderr  # names the file
    assert not out.exists()  # nothing written


def test_missing_data_dir_fails_with_exit_code_2(tmp_path):
    proc = _run(_command(tmp_path / "no_data", tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"--data-dir {tmp_path / 'no_data'}: no such directory" in proc.stderr
    assert "scripts/make_shapes.py" in proc.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------ the script: training


def _tensorboard_scalars(log_dir, newest_file_only=False):
    """{tag: [step, ...]} of the TensorBoard event files under `log_dir`."""
    files = sorted(
        (int(name.split(".")[3]), os.path.join(root, name))  # events.out.tfevents.<time>...
        for root, _, names in os.walk(log_dir)
        for name in names
        if name.startswith("events.out.tfevents")
    )
    if newest_file_only:
        files = files[-1:]
    scalars = {}
    for _, path in files:
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(event.step)
    return scalars


def _weights_match_checkpoint(model, checkpoint_path):
    """Every model weight equals (exactly) a tensor of the same shape in the checkpoint."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    by_shape = {}
    for name, shape in reader.get_variable_to_shape_map().items():
        if name.endswith("VARIABLE_VALUE"):
            by_shape.setdefault(tuple(shape), []).append(reader.get_tensor(name))
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        candidates = by_shape.get(tuple(value.shape), [])
        assert any(np.array_equal(value, c) for c in candidates), weight.path


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(shapes_root, tmp_path):
    # Two corrupt training images: skipped, counted and reported, not fatal.
    data = tmp_path / "data"
    shutil.copytree(shapes_root, data)
    corrupt = sorted((data / "train2017").iterdir())[:2]
    for path in corrupt:
        path.write_bytes(b"not an image")
    out = tmp_path / "run"
    command = _command(data, out, "train.steps=4", strategy="mirrored")
    launcher = textwrap.dedent(
        f"""
        import runpy, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        sys.argv = {command[1:]!r}
        runpy.run_path({SCRIPT!r}, run_name="__main__")
        """
    )
    proc = _run([sys.executable, "-c", launcher])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "MirroredStrategy: 2 replica(s), global batch 4 (2 per replica)" in proc.stdout
    summary = _summary(out)
    assert (summary["replicas"], summary["step"]) == (2, 4)
    assert summary["bad_samples"] == 2
    limit = load_config(CONFIG).data.max_bad_images
    assert f"bad images skipped: 2 (limit data.max_bad_images={limit})" in proc.stdout
    assert all(str(path) in proc.stdout for path in corrupt)  # named in the summary log
    # The reported loss is the mean of the replicas' losses: with one stack it is
    # focal + 0.1 pull + 0.1 push + offset of the (replica-averaged) parts. A
    # loss not divided by the replica count would show up here twice as large
    # (and its gradients would be summed, not averaged, over the replicas).
    logs = _last_epoch_logs(proc.stdout)
    parts = logs["focal"] + 0.1 * logs["pull"] + 0.1 * logs["push"] + logs["offset"]
    assert logs["loss"] == pytest.approx(parts, rel=2e-3, abs=2e-3)


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_with_two_local_workers(shapes_root, tmp_path):
    out = tmp_path / "run"
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    command = _command(shapes_root, out, "train.steps=4", strategy="multi_worker")
    procs = []
    with contextlib.ExitStack() as stack:
        for index in range(2):
            task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            log = stack.enter_context(open(tmp_path / f"worker{index}.log", "w"))
            env = _env(TF_CONFIG=json.dumps(task))
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
            stack.callback(proc.wait)
            stack.callback(proc.kill)
            procs.append(proc)
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    outputs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-4000:]
    assert "2 replica(s), global batch 4 (2 per replica)" in outputs[0]
    assert "model: " in outputs[0] and "model: " not in outputs[1]  # only the chief writes
    summary = _summary(out)
    assert (summary["replicas"], summary["step"]) == (2, 4)
    assert sorted(os.listdir(out / "checkpoints")) == [
        "checkpoint",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
        "ckpt-4.data-00000-of-00001",
        "ckpt-4.index",
    ]
    logs = _last_epoch_logs(outputs[0])
    parts = logs["focal"] + 0.1 * logs["pull"] + 0.1 * logs["push"] + logs["offset"]
    assert logs["loss"] == pytest.approx(parts, rel=2e-3, abs=2e-3)


def test_batch_must_divide_over_the_replicas(shapes_root, tmp_path, monkeypatch):
    class _TwoReplicas:
        num_replicas_in_sync = 2

    config = load_config(CONFIG, ["train.batch_size=5"])
    with pytest.raises(ConfigError, match="must be divisible by the 2 replicas.*batch_size=4"):
        training.train(config, shapes_root, tmp_path / "out", strategy=_TwoReplicas())
    assert not (tmp_path / "out").exists()


def test_an_input_size_the_network_cannot_take_fails_before_any_work(shapes_root, tmp_path):
    with pytest.raises(ConfigError, match="data.input_size 100 .*nearest sizes.*: 95 or 127"):
        load_config(CONFIG, ["data.input_size=100", "data.output_size=25"])
    # A config built in Python, not loaded, is checked by `train` itself.
    config = load_config(CONFIG)
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, input_size=100, output_size=25)
    )
    with pytest.raises(ConfigError, match="data.input_size 100 .*nearest sizes.*: 95 or 127"):
        training.train(config, shapes_root, tmp_path / "out", strategy="one_device")
    assert not (tmp_path / "out").exists()


# A child process that SIGKILLs itself at a named point of a run: the test
# patches the writer it names (no hook in the package), so the kill lands at
# that exact moment of every run, however fast or slow the machine.
_KILL_AT = textwrap.dedent(
    """
    import os, signal, sys

    point, argv = sys.argv[1], sys.argv[2:]

    def die(half_written):
        # What a kill in the middle of the write leaves: half of the file.
        with open(half_written, "r+b") as f:
            f.truncate(os.path.getsize(half_written) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    if point.startswith("checkpoint-"):
        # The checkpoint's files are written; the index still names the previous one.
        from tensorflow.python.checkpoint import checkpoint_management

        record = checkpoint_management.CheckpointManager._record_state

        def record_state(self):
            latest = self._latest_checkpoint
            if latest.endswith(point[len("checkpoint"):]):
                die(latest + ".data-00000-of-00001")
            record(self)

        checkpoint_management.CheckpointManager._record_state = record_state
    else:
        # The final rename of model.keras / the export's version folder.
        replace, rename = os.replace, os.rename

        def rename_or_die(src, dst, **kwargs):
            if point == "model" and str(dst).endswith("model.keras"):
                die(src)
            if point == "export" and os.path.isdir(src) and ".incomplete" in str(src):
                die(os.path.join(src, "saved_model.pb"))
            return (rename if "incomplete" in str(src) else replace)(src, dst, **kwargs)

        os.replace = os.rename = rename_or_die

    if point == "export":
        from cornernet_tf.cli.export import main
    else:
        from cornernet_tf.cli.train import main
    sys.exit(main(argv))
    """
)


def _killed_at(point, argv, log):
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AT, point, *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=REPO,
        timeout=TIMEOUT,
    )
    log.seek(0)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {point}: {log.read()[-3000:]}"
    log.seek(0, os.SEEK_END)


def _visible(folder):
    """What a glob, a resumed run or TF Serving sees: names not starting with a dot."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.slow
def test_killed_anywhere_the_same_command_finishes_and_no_partial_file_is_visible(
    shapes_root, tmp_path
):
    """End to end, one command: SIGKILL while checkpoint 4 of 6 is written, then the same
    command again (it resumes from checkpoint 2 and finishes), then SIGKILL while model.keras
    is written again (the complete file stays) and while the SavedModel is written (the next
    export writes its version): no partial file is ever visible."""
    out, exports = tmp_path / "run", tmp_path / "exports"
    steps = 6  # from the command line, not shapes_tiny.yaml's; a checkpoint every 2 steps
    command = _command(shapes_root, out, f"train.steps={steps}")
    argv = command[2:]
    checkpoints = out / "checkpoints"
    with open(tmp_path / "runs.log", "w+") as log:  # read back after the runs
        _killed_at("checkpoint-4", argv, log)  # its files are written, the index is not
        latest = tf.train.latest_checkpoint(str(checkpoints))
        saved_step = 2
        assert latest.endswith(f"ckpt-{saved_step}")
        assert not (out / "model.keras").exists()
        assert not [n for n in _visible(out) if n.endswith(".keras")]

        # What the restarted trainer restores: exactly the last checkpoint.
        config = load_config(out / "config.yaml")
        assert config.train.steps == steps and config.data.input_size == 63  # the resolved config
        state = training.build_training_state(
            config,
            list(shapes.CLASSES),
            str(checkpoints),
            learning_rate=training.LearningRate.from_config(config.train),
            write_dir=str(tmp_path / "w"),
        )
        assert state.restored_from == latest and state.step == saved_step
        assert int(state.model.optimizer.iterations.numpy()) == saved_step
        _weights_match_checkpoint(state.model, latest)
        moving = [w for w in state.model.weights if "moving_variance" in w.path]
        assert moving and any(not np.allclose(keras.ops.convert_to_numpy(w), 1.0) for w in moving)

        proc = _run(command)  # the same command again
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        assert f"resumed from {latest} at step {saved_step}" in proc.stdout
        summary = _summary(out)
        assert (summary["step"], summary["start_step"], summary["replicas"]) == (
            steps,
            saved_step,
            1,
        )
        base = load_config(CONFIG).train  # the learning rate of shapes_tiny.yaml, scaled to batch 4
        assert summary["learning_rate"] == pytest.approx(base.learning_rate * 4 / base.base_batch)
        assert summary["bad_samples"] == 0
        assert "bad images skipped: 0" in proc.stdout
        for name in ("loss", "focal", "pull", "push", "offset", "learning_rate", "images_per_sec"):
            assert f" {name}: " in proc.stdout, name  # the progress line
        assert tf.train.latest_checkpoint(str(checkpoints)).endswith(f"ckpt-{steps}")
        assert len(tf.train.get_checkpoint_state(str(checkpoints)).all_model_checkpoint_paths) == 2
        with open(out / "classes.json") as f:
            assert [c["name"] for c in json.load(f)["categories"]] == list(shapes.CLASSES)
        assert not [n for n in os.listdir(out) if n.startswith(".")]  # no temp files left

        import cornernet_tf  # noqa: F401  (registers CornerNet for loading)

        model = keras.models.load_model(out / "model.keras")
        assert model.compiled and int(model.optimizer.iterations) == steps
        _weights_match_checkpoint(model, str(checkpoints / f"ckpt-{steps}"))
        assert type(model).__name__ == "CornerNet"
        assert model.num_classes == len(shapes.CLASSES) and model.class_names == list(
            shapes.CLASSES
        )
        heads = model(np.zeros((1, 63, 63, 3), "float32"), training=False)
        assert heads["tl_heatmap"].shape == (1, 16, 16, len(shapes.CLASSES))
        for final, restored in zip(model.weights, state.model.weights, strict=True):
            assert final.shape == restored.shape

        # Killed while a finished run writes model.keras again: the complete file
        # stays, untouched, and no other .keras file is visible. (Running a
        # finished run again: test_wrong_results.py.)
        finished = (out / "model.keras").read_bytes()
        _killed_at("model", argv, log)
        assert tf.train.latest_checkpoint(str(checkpoints)).endswith(f"ckpt-{steps}")
        assert [n for n in _visible(out) if n.endswith(".keras")] == ["model.keras"]
        assert (out / "model.keras").read_bytes() == finished

        export_argv = ["--model", str(out / "model.keras"), "--output", str(exports)]
        export_argv += ["--format", "saved_model"]
        _killed_at("export", export_argv, log)
        assert _visible(exports / "cornernet") == []  # TF Serving sees no version
        from serving_double import ServingDouble

        with pytest.raises(ValueError, match="no version directories"):
            ServingDouble(exports / "cornernet", "cornernet")
        from cornernet_tf.cli import export as export_cli

        for stale in (exports / "cornernet").iterdir():  # killed a minute ago
            os.utime(stale, (time.time() - 60,) * 2)
        assert export_cli.main(export_argv) == 0
        assert _visible(exports / "cornernet") == ["1"]
        # ... and the killed writer's hidden staging folder is gone too.
        assert sorted(p.name for p in (exports / "cornernet").iterdir()) == ["1"]
        tf.saved_model.load(str(exports / "cornernet" / "1"))  # complete

    pytest.importorskip("tensorboard")
    # The newest event file is the resumed run's (the runs after it train
    # nothing): its curves continue at the restored step.
    scalars = _tensorboard_scalars(out / "logs" / "train", newest_file_only=True)
    for tag in ("batch_loss", "batch_focal", "batch_learning_rate", "batch_images_per_sec"):
        assert tag in scalars, sorted(scalars)
    assert scalars["batch_loss"] == list(range(saved_step + 1, steps + 1))


# ------------------------------------- the script: nothing lost, one writer


def test_abbreviated_options_are_not_taken_for_others(capsys):
    # Before: `--model x.keras` was read as `--model-dir x.keras`.
    with pytest.raises(SystemExit) as exit_info:
        train_cli.parse_args(
            ["--config", "c", "--data-dir", "d", "--model-dir", "m", "--model", "x"]
        )
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --model x" in capsys.readouterr().err


def _wait_for(predicate, proc, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.2)


def _newest_step(checkpoints):
    return max(int(p.name[len("ckpt-") : -len(".index")]) for p in checkpoints.glob("ckpt-*.index"))


def _interrupted_line(stderr, name, checkpoints):
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted by ")]
    assert len(lines) == 1, stderr[-3000:]
    prefix = f"interrupted by {name} at step "
    assert lines[0].startswith(prefix), lines[0]
    step = int(lines[0][len(prefix) :].split(":")[0])
    assert lines[0].endswith(
        f": checkpoint {checkpoints / f'ckpt-{step}'}; run the same command to resume"
    )
    return step


@pytest.mark.slow
def test_one_writer_a_signal_saves_the_step_and_a_lost_index_resumes_from_the_older(
    shapes_root, tmp_path
):
    """Before: a second run on the same --model-dir trained too, over the same checkpoints;
    Ctrl-C ended in a KeyboardInterrupt traceback and lost the steps since the last checkpoint;
    a deleted newest index (or `checkpoint` file) made the next run start from scratch."""
    out = tmp_path / "run"
    checkpoints = out / "checkpoints"
    command = _console(shapes_root, out, "train.steps=100000", "train.checkpoint_every=3")
    with open(tmp_path / "first.log", "w+") as log:
        first = subprocess.Popen(
            command, stdout=log, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO
        )
        try:
            _wait_for(lambda: (checkpoints / "ckpt-3.index").exists(), first, "checkpoint 3")
            second = _run(_console(shapes_root, out, "train.steps=100000"))
            assert second.returncode == 2, second.stderr[-3000:]
            assert "Traceback" not in second.stderr
            assert (
                f"error: {out / 'train.lock'}: another training run (PID {first.pid} on host "
                f"{socket.gethostname()}, started " in second.stderr
            )
            first.send_signal(signal.SIGINT)
            _, stderr = first.communicate(timeout=TIMEOUT)
        finally:
            first.kill()
    assert first.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    step = _interrupted_line(stderr, "SIGINT", checkpoints)
    assert tf.train.latest_checkpoint(str(checkpoints)) == str(checkpoints / f"ckpt-{step}")
    assert not (out / "train.lock").exists() and not (out / "model.keras").exists()

    # The newest checkpoint's index and the `checkpoint` file lost: the next run
    # resumes from the newest complete one, saying what it skipped; SIGTERM ends it.
    os.remove(checkpoints / f"ckpt-{step}.index")
    older = _newest_step(checkpoints)
    os.remove(checkpoints / "checkpoint")
    with open(tmp_path / "second.log", "w+") as log:
        resumed = subprocess.Popen(
            command, stdout=log, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO
        )
        try:
            _wait_for(lambda: _newest_step(checkpoints) > older, resumed, "a new checkpoint")
            resumed.send_signal(signal.SIGTERM)
            _, stderr = resumed.communicate(timeout=TIMEOUT)
        finally:
            resumed.kill()
        log.seek(0)
        stdout = log.read()
    assert resumed.returncode == 143, stdout[-2000:] + stderr[-3000:]
    assert (
        f"skipped checkpoint {checkpoints / f'ckpt-{step}'}: ckpt-{step}.index is missing" in stdout
    )
    assert f"resumed from {checkpoints / f'ckpt-{older}'} at step {older}" in stdout
    assert "starting from scratch" not in stdout
    stopped = _interrupted_line(stderr, "SIGTERM", checkpoints)
    assert stopped > older


@pytest.mark.slow
def test_a_full_disk_is_one_message_and_leaves_no_partial_checkpoint(shapes_root, tmp_path):
    # Before: ResourceExhaustedError ... SaveV2 in a traceback, ckpt-2_temp/ left behind.
    # A file size limit below a checkpoint's size fails its write as a full disk does.
    out = tmp_path / "run"
    launcher = textwrap.dedent(
        """
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
        from cornernet_tf.cli.train import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    proc = _run([sys.executable, "-c", launcher, *_command(shapes_root, out, "train.steps=4")[2:]])
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {out / 'checkpoints' / 'ckpt-2'}: cannot write the checkpoint (File too large); "
        f"free disk space or make {out / 'checkpoints'} writable, then run the same command again."
    ]
    assert os.listdir(out / "checkpoints") == []  # no ckpt-2_temp/
    assert not (out / "train.lock").exists()


class _Recorder(keras.callbacks.Callback):
    """A user's callback: the steps it saw and the evaluation results in its logs."""

    def __init__(self):
        super().__init__()
        self.steps, self.val_ap = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(int(self.model.optimizer.iterations.numpy()))
        if "val_AP" in logs:
            self.val_ap.append((self.steps[-1], logs["val_AP"]))


def test_best_model_user_callbacks_and_restart(shapes_root, tmp_path):
    # The run directory holds an earlier run with a broken checkpoint: refused
    # without `restart`, moved aside with it.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-9.index").write_bytes(b"")
    (run / "model.keras").write_bytes(b"the earlier model")
    config = load_config(CONFIG, [*SMALL, "train.steps=6", "train.eval_every=2"])
    aps = iter([0.3, 0.6, 0.5])
    evaluated = []

    def evaluate_fn(model):
        evaluated.append(int(model.optimizer.iterations.numpy()))
        return {"AP": next(aps), "AP50": 0.9}

    with pytest.raises(training.SetupError, match="no complete checkpoint .*--restart"):
        training.train(config, shapes_root, run, strategy="one_device", evaluate_fn=evaluate_fn)
    recorder = _Recorder()
    result = training.train(
        config,
        shapes_root,
        run,
        strategy="one_device",
        evaluate_fn=evaluate_fn,
        verbose=0,
        callbacks=[recorder],
        restart=True,
    )
    assert result.start_step == 0 and evaluated == [2, 4, 6]
    assert recorder.steps == [1, 2, 3, 4, 5, 6]
    assert recorder.val_ap == [(2, 0.3), (4, 0.6), (6, 0.5)]  # after the evaluation
    (replaced,) = run.glob("replaced-*")
    assert (replaced / "model.keras").read_bytes() == b"the earlier model"
    assert (replaced / "checkpoints" / "ckpt-9.index").exists()

    best = {"step": 4, "metric": "AP", "value": 0.6, "path": str(run / "best.keras")}
    assert result.best == best and _summary(run)["best"] == best
    import cornernet_tf.models  # noqa: F401  (registers CornerNet for loading)

    model = keras.models.load_model(run / "best.keras")
    assert int(model.optimizer.iterations) == 4
    _weights_match_checkpoint(model, str(run / "checkpoints" / "ckpt-4"))
    pytest.importorskip("tensorboard")
    scalars = _tensorboard_scalars(run / "logs" / "eval")
    assert scalars["AP"] == [2, 4, 6] and scalars["AP50"] == [2, 4, 6]
