"""Backups that survive a kill at any moment, for resuming a run where it stopped.

Keras's ``BackupAndRestore`` writes ``latest.weights.h5`` and its epoch count
in place, as two files: a kill during the write leaves a truncated file, and a
kill between the two leaves new weights beside an old epoch count. Here each
backup is one folder, ``backup/epoch-NNNNNN/``, holding the weights (model and
optimizer) and ``training_metadata.json``; it is written under a temporary
name and renamed into place when complete, and only then are backups older
than the previous one deleted, so the two newest complete backups always
exist. On resume the newest backup that loads is used; a damaged one is
reported in one line and the one before it is tried.
"""

import json
import os
import re
import shutil

import keras
import numpy as np
import tensorflow as tf

from softvq_tf import compat
from softvq_tf.training import rundir
from softvq_tf.training.errors import TrainingError

_BACKUP = re.compile(r"^epoch-(\d{6})$")
WEIGHTS = "weights.weights.h5"
METADATA = "training_metadata.json"


def backups(backup_dir):
    """The complete backups in ``backup_dir``, newest first, as ``[(epoch, path)]``."""
    if not os.path.isdir(backup_dir):
        return []
    found = [
        (int(m.group(1)), os.path.join(backup_dir, name))
        for name in os.listdir(backup_dir)
        if (m := _BACKUP.match(name))
    ]
    return sorted(found, reverse=True)


def read_epoch(path):
    """The completed epochs a backup folder holds; ``ValueError`` if its metadata is damaged."""
    with open(os.path.join(path, METADATA)) as f:
        epoch = int(json.load(f)["epoch"])
    if not os.path.isfile(os.path.join(path, WEIGHTS)):
        raise ValueError(f"{path} has no {WEIGHTS}")
    return epoch


def newest_usable(backup_dir, log=print, load=None):
    """``(epoch, path)`` of the newest backup whose metadata (and, with ``load``, weights) load; ``(0, None)`` if none.

    Each damaged backup is reported in one line through ``log``; when every
    backup is damaged, ``TrainingError`` names them and says to delete them.
    """
    found = backups(backup_dir)
    damaged = []
    for epoch, path in found:
        try:
            if read_epoch(path) != epoch:
                raise ValueError("its metadata names another epoch")
            if load is not None:
                load(os.path.join(path, WEIGHTS))
            return epoch, path
        except (OSError, ValueError, KeyError) as error:
            damaged.append(path)
            log(
                f"backup {path} is damaged ({type(error).__name__}: {str(error).splitlines()[0][:120]}); "
                "trying the one before it"
            )
    if damaged:
        raise TrainingError(
            f"no usable backup in {backup_dir} ({', '.join(damaged)} damaged); "
            f"delete {backup_dir} to train this run again from step 0"
        )
    return 0, None


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` whose backups are whole folders renamed into place.

    Args:
        backup_dir: the folder of the backups (one run's only).
        log: where the one-line notices about damaged backups go.

    After a backup is in place, all but the two newest are deleted: a damaged
    newest backup falls back to the one before it.
    """

    def __init__(self, backup_dir, log=print):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.log = log
        self.restored_epoch = 0

    def restore(self, model, epoch=None):
        """Load a backup into ``model`` (built and compiled); returns its epoch (0: none, start at step 0).

        ``epoch`` None: the newest usable backup (falling back past damaged
        ones); else exactly that epoch's backup, as the workers agreed
        (``agree_on_epoch``). Called before ``fit`` so that the data stream
        can start at the same step as the weights; ``on_train_begin`` then
        only starts ``fit`` there.
        """
        self.set_model(model)
        if epoch is None:
            self.restored_epoch, _ = newest_usable(self.backup_dir, self.log, load=self._load_weights)
        elif epoch:
            path = os.path.join(self.backup_dir, f"epoch-{epoch:06d}")
            try:
                self._load_weights(os.path.join(path, WEIGHTS))
            except (OSError, ValueError, KeyError) as error:
                raise TrainingError(
                    f"cannot load the agreed backup {path} ({type(error).__name__}); delete the backups of every "
                    "worker to train this run again from step 0"
                ) from None
            self.restored_epoch = epoch
        return self.restored_epoch

    def on_train_begin(self, logs=None):
        if self.restored_epoch:
            compat.set_initial_epoch(self.model, self.restored_epoch)

    def _load_weights(self, path):
        # As Keras does: the optimizer's slots are in the backup, so they must exist before loading.
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(path)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        path = os.path.join(self.backup_dir, f"epoch-{self._current_epoch:06d}")
        with rundir.atomic_path(path) as tmp:
            os.makedirs(tmp)
            self.model.save_weights(os.path.join(tmp, WEIGHTS))
            metadata = json.dumps({"epoch": self._current_epoch})
            rundir.write_atomic(os.path.join(tmp, METADATA), metadata)
        for _, old in backups(self.backup_dir)[2:]:
            shutil.rmtree(old, ignore_errors=True)


def agree_on_epoch(strategy, backup_dir, log=print):
    """The newest epoch that every worker of ``strategy`` has a complete backup of (0: none, start at step 0).

    Each worker offers the epochs of its two newest backups whose metadata
    reads; the values are gathered over the workers (a collective, so every
    worker calls this at the same point). A worker killed while writing has
    its previous backup still, so the workers fall back together to an epoch
    they all have. Backups that share no epoch are refused in one line.
    """
    mine = []
    for epoch, path in backups(backup_dir)[:2]:
        try:
            if read_epoch(path) == epoch:
                mine.append(epoch)
        except (OSError, ValueError, KeyError) as error:
            log(f"backup {path} is damaged ({type(error).__name__}); not offered")
    offer = np.full([1, 2], -1, np.int64)
    offer[0, : len(mine)] = mine
    values = strategy.experimental_distribute_values_from_function(lambda context: tf.constant(offer))
    everyone = [set(row) - {-1} for row in strategy.gather(values, axis=0).numpy().tolist()]
    if not any(everyone):
        return 0
    common = set.intersection(*everyone)
    if not common:
        raise TrainingError(
            f"the workers' backups share no epoch (this worker's, in {backup_dir}: {mine or 'none'}); restore the "
            "missing backup folders, or delete the backups of every worker to train this run again from step 0"
        )
    return max(common)
