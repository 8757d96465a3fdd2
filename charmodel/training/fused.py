"""A faster LSTM training step on a CPU: Keras' own LSTM layer, with a hand-written backward pass.

Keras' LSTM on a CPU runs its cell step by step and lets TensorFlow differentiate the loop. That
loop then does, at every step, small matrix products a CPU runs far below its peak: the input
projection (B x D by D x 4u) forward, and both weight gradients (u x B by B x 4u) backward. Here
(as cuDNN does on a GPU) every product that does not depend on the previous step leaves the loop:

  forward   Z_x = X W + b for the whole sequence at once; in the loop only z_t = Z_x[t] + h_{t-1} U
  backward  in the loop only dh_{t-1} = dz_t U^T; then dW = X^T dZ, dU = H_{t-1}^T dZ, db = sum dZ
            and dX = dZ W^T, each one large product over every step.

The gate order (i, f, c, o), the weights and their names are Keras', so a checkpoint, `export_weights`
and the NumPy engine see the same model. `tests/training/test_fused.py` checks the outputs, the
carried state and every gradient against Keras' LSTM; `benchmarks/training_step.py` times it.
On a GPU (cuDNN), with recurrent dropout, a mask or going backwards, the layer is Keras' own.
Imports TensorFlow: training only.
"""

import keras
import tensorflow as tf


def lstm_sequence(x, h0, c0, kernel, recurrent, bias):
    """x (B, T, D), h0 and c0 (B, u) -> (h for every step (B, T, u), h_T, c_T), differentiable."""

    @tf.custom_gradient
    def run(x, h0, c0, W, U, b):
        u = tf.shape(U)[0]
        B, T, D = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        x_flat = tf.reshape(tf.transpose(x, [1, 0, 2]), [-1, D])  # (T*B, D), time-major
        zx = tf.reshape(tf.matmul(x_flat, W) + b, [T, B, 4 * u])

        def step(t, h, c, hs, cs, gates):
            z = zx[t] + tf.matmul(h, U)
            i_f = tf.sigmoid(z[:, : 2 * u])
            g = tf.tanh(z[:, 2 * u : 3 * u])
            o = tf.sigmoid(z[:, 3 * u :])
            c = i_f[:, u:] * c + i_f[:, :u] * g
            h = o * tf.tanh(c)
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates.write(t, tf.concat([i_f, g, o], 1))

        steps = lambda: tf.TensorArray(x.dtype, size=T)
        _, hT, cT, hs, cs, gates = tf.while_loop(lambda t, *_: t < T, step, (0, h0, c0, steps(), steps(), steps()))
        hs, cs, gates = hs.stack(), cs.stack(), gates.stack()  # (T, B, u), (T, B, u), (T, B, 4u)

        def grad(d_hs, d_hT, d_cT):
            d_hs = tf.transpose(d_hs, [1, 0, 2])  # (T, B, u)
            c_prev = tf.concat([c0[None], cs[:-1]], 0)
            U_t = tf.transpose(U)

            def back(t, dh_next, dc_next, dzs):
                gate = gates[t]
                i, f, g, o = gate[:, :u], gate[:, u : 2 * u], gate[:, 2 * u : 3 * u], gate[:, 3 * u :]
                tanh_c = tf.tanh(cs[t])
                dh = d_hs[t] + dh_next
                dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
                dz = tf.concat([dc * g * i * (1 - i), dc * c_prev[t] * f * (1 - f), dc * i * (1 - g * g),
                                dh * tanh_c * o * (1 - o)], 1)  # through each gate's own nonlinearity
                return t - 1, tf.matmul(dz, U_t), dc * f, dzs.write(t, dz)

            _, dh0, dc0, dzs = tf.while_loop(lambda t, *_: t >= 0, back, (T - 1, d_hT, d_cT, steps()))
            dZ = tf.reshape(dzs.stack(), [-1, 4 * u])  # (T*B, 4u)
            h_prev = tf.reshape(tf.concat([h0[None], hs[:-1]], 0), [-1, u])
            dx = tf.transpose(tf.reshape(tf.matmul(dZ, W, transpose_b=True), [T, B, D]), [1, 0, 2])
            dW = tf.matmul(x_flat, dZ, transpose_a=True)
            dU = tf.matmul(h_prev, dZ, transpose_a=True)
            return dx, dh0, dc0, dW, dU, tf.reduce_sum(dZ, 0)

        return (tf.transpose(hs, [1, 0, 2]), hT, cT), grad

    return run(x, h0, c0, *(tf.convert_to_tensor(v) for v in (kernel, recurrent, bias)))


def uses_gpu() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


class LSTM(keras.layers.LSTM):
    """keras.layers.LSTM whose loop is `lstm_sequence` on a CPU (same weights, same results)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        keras_own = (uses_gpu() or mask is not None or self.go_backwards or self.unroll or cell.dropout
                     or cell.recurrent_dropout or not cell.use_bias
                     or getattr(cell.activation, "__name__", "") != "tanh"
                     or getattr(cell.recurrent_activation, "__name__", "") != "sigmoid")
        if keras_own:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        h0, c0 = initial_state
        outputs, h, c = lstm_sequence(sequences, h0, c0, cell.kernel, cell.recurrent_kernel, cell.bias)
        return h, outputs, [h, c]
