"""torch_utils/launcher.py: the one torchrun rule, CPU thread sharing, and a spawned gloo group that
meets by a file and stops its watchdogs cleanly (the steps train.py and calc_metrics.py share)."""

import os

import pytest
import torch

from torch_utils import launcher

def test_torchrun_needs_rank_world_size_and_local_rank(monkeypatch):
    for key in launcher.TORCHRUN_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('RANK', '3')
    monkeypatch.setenv('WORLD_SIZE', '8')
    assert launcher.torchrun_env() is None  # A partial set is not torchrun.
    monkeypatch.setenv('LOCAL_RANK', '1')
    assert launcher.torchrun_env() == (3, 8, 1)

def test_cpu_threads_are_shared_by_the_processes_of_this_machine(monkeypatch):
    saved = torch.get_num_threads()
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    try:
        assert launcher.share_cpu_threads(world_size=2, torchrun=False)[1] == 2  # Spawned: all on this machine.
        threads, local = launcher.share_cpu_threads(world_size=2, torchrun=True)  # torchrun: as it says.
        assert local == 1 and threads == torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)

def test_device_of_a_process():
    assert launcher.process_device('cuda', 1) == torch.device('cuda', 1)
    assert launcher.process_device('cpu', 1) == torch.device('cpu')

def _worker(rank, temp_dir, out_dir):
    device = launcher.process_device('cpu', rank)
    launcher.init_group(rank=rank, world_size=2, device=device, temp_dir=temp_dir, timeout=60)
    watchdog = launcher.start_watchdog(rank=rank, world_size=2, timeout=10.0, interval=0.5)
    total = torch.tensor([rank + 1.0])
    torch.distributed.all_reduce(total)
    launcher.stop_watchdog(watchdog, barrier=True)
    with open(os.path.join(out_dir, f'{rank}.txt'), 'w') as f:
        f.write(f'{total.item():g}')
    torch.distributed.destroy_process_group()

@pytest.mark.slow
def test_spawned_processes_meet_by_a_file(tmp_path):
    launcher.spawn(_worker, args=(str(tmp_path), str(tmp_path)), nprocs=2)
    assert [(tmp_path / f'{rank}.txt').read_text() for rank in range(2)] == ['3', '3']
