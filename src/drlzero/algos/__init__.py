"""Algorithms: DQN and the tabular agents."""
