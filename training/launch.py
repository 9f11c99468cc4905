"""Running the training loop in one process, in N spawned processes (--gpus=N), or as one rank of a
group started by torchrun (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

In a multi-process run every rank starts a PeerWatchdog (torch_utils/distributed.py): a lost rank
ends the whole run within peer_timeout seconds with one line that names it. Every process stops
cleanly on SIGTERM, SIGINT or SIGUSR1 (training/preempt.py): after a snapshot, with status
preempt.EXIT_PREEMPTED.

The generic steps (torchrun detection, devices, CPU threads, process group, spawning, watchdog) are
torch_utils/launcher.py's, shared with calc_metrics.py; this module adds what training needs on top:
log.txt, the stop request, the run directory shared by rank 0 and the training loop itself."""

import copy
import os
import sys
import tempfile

import torch

import dnnlib
from torch_utils import distributed
from torch_utils import launcher
from torch_utils import training_stats
from torch_utils.launcher import DEFAULT_LAUNCH
from torch_utils.launcher import torchrun_env  # noqa: F401 (train.py calls launch.torchrun_env())
from training import preempt
from training import training_loop


#----------------------------------------------------------------------------

def _resume_advice(c):
    run_dir = c.get('run_dir')
    return f'To continue, rerun the same command with --resume={run_dir}.' if run_dir else ''

def _launch_opts(c):
    return dict(DEFAULT_LAUNCH, **c.get('launch_kwargs', {}))

def _start_watchdog(c, rank):
    opts = _launch_opts(c)
    return launcher.start_watchdog(rank=rank, world_size=c.num_gpus, timeout=opts['peer_timeout'],
        interval=opts['heartbeat_interval'], advice=_resume_advice(c))

RECORDS = ('launch_kwargs', 'data_fingerprint')  # Options for the launcher, or kept for the record only.

def _loop_kwargs(c, device, stop_request):
    return dict({key: value for key, value in c.items() if key not in RECORDS}, device=device, stop_request=stop_request)

#----------------------------------------------------------------------------

def subprocess_fn(rank, c, temp_dir, local_rank=None, group_ready=False):
    """One training process: log file (rank 0), process group and watchdog, then the training loop."""
    local_rank = rank if local_rank is None else local_rank
    device = launcher.process_device(c.device, local_rank)
    opts = _launch_opts(c)
    stop_request = preempt.StopRequest(name=f'train.py (rank {rank})').install()
    try:
        with dnnlib.util.Logger(file_name=os.path.join(c.run_dir, 'log.txt') if rank == 0 else None, file_mode='a', should_flush=True):
            _run_process(rank, c, temp_dir, local_rank, group_ready, device, opts, stop_request)
    finally:
        stop_request.uninstall()

def _run_process(rank, c, temp_dir, local_rank, group_ready, device, opts, stop_request):
    if c.num_gpus == 1:
        training_loop.training_loop(rank=rank, **_loop_kwargs(c, device, stop_request))
        return
    launcher.use_device(device)
    if device.type == 'cpu':  # CPU processes of one machine share its cores.
        threads, local = launcher.share_cpu_threads(world_size=c.num_gpus, torchrun=group_ready)
        print(f'Process {rank}: {threads} CPU threads ({local} processes on this machine)')
    if not group_ready:
        launcher.init_group(rank=rank, world_size=c.num_gpus, device=device, temp_dir=temp_dir, timeout=opts['pg_timeout'])
    watchdog = _start_watchdog(c, rank)
    training_stats.init_multiprocessing(rank=rank, sync_device=device)
    try:
        training_loop.training_loop(rank=rank, **_loop_kwargs(c, device, stop_request))
    except preempt.Preempted:
        launcher.stop_watchdog(watchdog, barrier=True)  # Rank 0 has written the snapshot before any process exits.
        launcher.leave_group()
        raise
    except (training_loop.TrainingDiverged, KeyboardInterrupt):
        launcher.stop_watchdog(watchdog, barrier=False)
        raise
    except Exception as err:
        message = watchdog.explain()
        if message is not None:
            distributed.report(rank, message)  # Inside the Logger: the line lands in log.txt too.
            raise distributed.PeerLost(message) from None
        watchdog.announce_failure(err)
        raise
    launcher.stop_watchdog(watchdog, barrier=True)  # Every rank is done before any watchdog stops watching.
    launcher.leave_group()

def _spawned(rank, c, temp_dir):
    try:
        subprocess_fn(rank, c, temp_dir)
    except distributed.PeerLost:
        sys.exit(1)  # Already reported.
    except preempt.Preempted:
        sys.exit(preempt.EXIT_PREEMPTED)  # Rank 0 said where the snapshot is.

def _spawn(c, temp_dir):
    """--gpus=N on one machine: N child processes; this parent forwards a stop signal to them once."""
    context = launcher.start_processes(_spawned, args=(copy.deepcopy(c), temp_dir), nprocs=c.num_gpus)
    stop_request = preempt.StopRequest(forward_to=[process.pid for process in context.processes], name='train.py').install()
    try:
        launcher.join_processes(context)
    except torch.multiprocessing.ProcessExitedException as err:
        if err.exit_code == preempt.EXIT_PREEMPTED:  # Rank 0 has logged where the snapshot is and how to continue.
            raise preempt.Preempted(f'stopped by {stop_request.signal_name or "a signal"}; see {c.run_dir}/log.txt') from None
        how = f'was killed by {err.signal_name}' if err.signal_name else f'exited with status {err.exit_code}'
        raise distributed.PeerLost(f'training process {err.error_index} of {c.num_gpus} {how}; the others were stopped. '
            f'{_resume_advice(c)}') from None
    finally:
        stop_request.uninstall()

def launch(c, torchrun=None):
    """Run training as configured by the options dict c. A lost process raises PeerLost (spawned
    processes) or ends this rank with its one-line message and status 1 (torchrun); a stop signal
    raises preempt.Preempted after the snapshot is written."""
    if torchrun is not None:
        # Multi-node: join the launcher's group; rank 0 tells the others where the run lives.
        rank, _world_size, local_rank = torchrun
        device = launcher.process_device(c.device, local_rank)
        launcher.use_device(device)
        launcher.init_group(rank=rank, world_size=c.num_gpus, device=device, temp_dir=None,
            timeout=_launch_opts(c)['pg_timeout'])
        shared = [c.get('run_dir')]
        torch.distributed.broadcast_object_list(shared, src=0)
        c.run_dir = shared[0]
        try:
            subprocess_fn(rank, c, temp_dir=None, local_rank=local_rank, group_ready=True)
        except distributed.PeerLost:
            sys.exit(1)  # Already reported.
    elif c.num_gpus == 1:
        subprocess_fn(0, c, temp_dir=None)
    else:
        print('Launching processes...')
        with tempfile.TemporaryDirectory() as temp_dir:
            _spawn(c, temp_dir)

#----------------------------------------------------------------------------
