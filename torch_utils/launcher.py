"""Running one job as several processes: spawned here (--gpus=N), or started by torchrun.

The tools (train.py through training/launch.py, calc_metrics.py) share these steps:
    torchrun_env()        started by torchrun (or any launcher that sets RANK, WORLD_SIZE and LOCAL_RANK)?
    process_device()      the device of one process: its CUDA device, or the CPU,
    use_device()          made current, so collectives and new tensors land on it,
    share_cpu_threads()   CPU processes of one machine split its cores,
    init_group()          the process group, met by a file (spawned processes) or by env:// (torchrun),
    spawn()               N fresh processes on this machine, joined,
    start_watchdog()      a lost process ends every rank with one line (distributed.PeerWatchdog),
    stop_watchdog()       after a final barrier,
    leave_group()         the group torn down before the process exits.
"""

import os

import torch

from torch_utils import distributed
from torch_utils import misc

TORCHRUN_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')
INIT_FILE_NAME = '.torch_distributed_init'  # In a temporary folder that the spawning parent owns.
# Seconds: a lost peer ends the run after peer_timeout without a heartbeat (sent every heartbeat_interval);
# a collective waits pg_timeout. train.py records them as launch_kwargs (--peer-timeout sets the first).
DEFAULT_LAUNCH = dict(peer_timeout=30.0, heartbeat_interval=1.0, pg_timeout=600)

#----------------------------------------------------------------------------

def torchrun_env():
    """(rank, world_size, local_rank) when started by torchrun or a similar launcher, else None."""
    if all(key in os.environ for key in TORCHRUN_VARIABLES):
        return int(os.environ['RANK']), int(os.environ['WORLD_SIZE']), int(os.environ['LOCAL_RANK'])
    return None

def process_device(device_type, local_rank):
    """The device of the process with this rank on its machine: CUDA device local_rank, or the CPU."""
    return torch.device('cuda', local_rank) if device_type == 'cuda' else torch.device('cpu')

def use_device(device):
    """Make a CUDA device current (NCCL and torch.cuda calls without an index use it); nothing on the CPU."""
    if device.type == 'cuda':
        torch.cuda.set_device(device)

def share_cpu_threads(world_size, torchrun):
    """Give this process its share of the machine's cores; returns (threads, processes on this machine).
    Under torchrun the machine may hold fewer than world_size processes (LOCAL_WORLD_SIZE says how many)."""
    local = int(os.environ.get('LOCAL_WORLD_SIZE', world_size)) if torchrun else world_size
    return misc.share_cpu_threads(local), local

def init_group(rank, world_size, device, temp_dir=None, timeout=600):
    """Join the process group: spawned processes meet by a file in temp_dir, torchrun's (temp_dir=None)
    by env:// (MASTER_ADDR, MASTER_PORT)."""
    if temp_dir is None:
        init_method = 'env://'
    else:
        init_method = f'file://{os.path.abspath(os.path.join(temp_dir, INIT_FILE_NAME))}'
    distributed.init_process_group(rank=rank, world_size=world_size, device=device, init_method=init_method,
        timeout=timeout)

#----------------------------------------------------------------------------

def start_processes(fn, args, nprocs):
    """fn(rank, *args) in nprocs fresh processes ('spawn': nothing inherited but the arguments), not joined;
    context.processes are the children, join_processes(context) waits for them."""
    return torch.multiprocessing.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method='spawn')

def join_processes(context):
    """Wait for every process; raises as torch.multiprocessing.spawn does when one fails (and stops the rest)."""
    while not context.join():
        pass

def spawn(fn, args, nprocs):
    """fn(rank, *args) in nprocs fresh processes, joined (torch.multiprocessing.spawn)."""
    join_processes(start_processes(fn, args=args, nprocs=nprocs))

#----------------------------------------------------------------------------

def start_watchdog(rank, world_size, timeout, interval, advice=''):
    """Heartbeats through the process group's store: a lost rank ends every rank within timeout seconds,
    with one line (plus advice) that names it. The group must exist."""
    return distributed.PeerWatchdog(distributed.default_store(), rank=rank, world_size=world_size,
        timeout=timeout, interval=interval, advice=advice).start()

def leave_group():
    """Tear the process group down before the process exits: left to the interpreter's exit, gloo's threads may
    be destroyed while joinable and abort the process ("terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

def stop_watchdog(watchdog, barrier=True):
    """Stop watching. With barrier, every rank first waits for the others, so that a rank that is done
    first is not taken for a lost one; without (after an error), this rank stops at once."""
    if barrier:
        torch.distributed.barrier()
    watchdog.stop()

#----------------------------------------------------------------------------
