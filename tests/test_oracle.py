import torch

from lbench.oracle import SimulatedOracle


def test_simulated_oracle_answers_truth_and_counts():
    oracle = SimulatedOracle(torch.tensor([3, 1, 4, 1, 5]))
    assert oracle.query(torch.tensor([4, 0])).tolist() == [5, 3]
    assert oracle.num_queries == 2
