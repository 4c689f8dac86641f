"""MySolver with input noise drawn per sample, counts summed over ranks, sharded generate.

What a solver does to get results that do not depend on the number of processes: random
draws from ``self.sample_generator(index)`` (keyed by seed, stage, epoch and sample
index), count metrics declared in ``metric_reductions``, and every rank's samples written.
"""

import torch
from my_solver import MySolver, _data
from torch.utils.data import DataLoader, Subset, TensorDataset


def _indexed(dataset):
    x, y = dataset.tensors
    return TensorDataset(x, y, torch.arange(len(x)))


class NoisySolver(MySolver):
    metric_reductions = {"items": "sum", "files": "sum"}

    def build_dataloaders(self):
        super().build_dataloaders()
        train = self.dataloaders["train"]
        toy = self.cfg.toy
        self.dataloaders["train"] = DataLoader(
            _indexed(train.dataset), batch_sampler=train.batch_sampler
        )
        # evaluate and generate: each rank takes its share of the items
        mine = Subset(
            _data(toy.n_valid, toy.dim, 7), range(self.rank, toy.n_valid, self.world_size)
        )
        self.dataloaders["evaluate"] = DataLoader(mine, batch_size=4)

    def run_step(self, idx, batch, metrics):
        if not self.is_training:
            return super().run_step(idx, batch[:2], metrics)
        x, y, index = batch
        noise = torch.stack(
            [torch.randn(x.shape[1], generator=self.sample_generator(i)) for i in index.tolist()]
        )
        loss = self.criterion(self.model(x + self.cfg.toy.noise * noise), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        metrics["loss"] = loss
        return metrics

    def evaluate(self):
        metrics = super().evaluate()
        metrics["items"] = sum(len(x) for x, _ in self.dataloaders["evaluate"])
        return metrics

    def generate(self):
        folder = self.samples_folder
        folder.mkdir(parents=True, exist_ok=True)
        written = 0
        for i, (x, _) in enumerate(self.dataloaders["evaluate"]):
            torch.save(self.model(x.to(self.device)).cpu(), folder / f"pred_r{self.rank}_{i}.th")
            written += 1
        return {"files": written}
