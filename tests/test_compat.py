"""The private TensorFlow/Keras APIs listed in softvq_tf.compat still exist and behave as relied on."""

import keras
import numpy as np
import tensorflow as tf

from softvq_tf import compat


def test_op_determinism_can_be_switched_off_again():
    from tensorflow.python.framework import config  # private too: the only way to read the switch

    tf.config.experimental.enable_op_determinism()
    assert config.is_op_determinism_enabled()
    compat.disable_op_determinism()
    assert not config.is_op_determinism_enabled()


def test_multi_worker_mode_is_queryable():
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # no TF_CONFIG: one local worker
    assert compat.in_multi_worker_mode(strategy) is False


def test_adam_slots_are_the_ones_keras_updates():
    variable = keras.Variable(np.ones((2, 3), "float32"))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.apply_gradients([(tf.ones((2, 3)), variable)])
    m, v = compat.adam_slots(optimizer, variable)
    assert m.shape == (2, 3) and v.shape == (2, 3)
    np.testing.assert_allclose(m.numpy(), 0.1, rtol=1e-6)  # (1 - beta_1) * g
    np.testing.assert_allclose(v.numpy(), 0.001, rtol=1e-5)  # (1 - beta_2) * g^2


def test_fit_starts_at_the_initial_epoch_a_callback_sets():
    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            compat.set_initial_epoch(self.model, 2)

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=5, verbose=0, callbacks=[Resume()])
    assert history.epoch == [2, 3, 4]
