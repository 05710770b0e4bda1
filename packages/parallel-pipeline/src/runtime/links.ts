import { YuanError } from '@yuan/core';
import { tf } from '@yuan/tensor';
import type { ProcessGroup } from '@yuan/comm';

/** Which neighbour: the previous stage, the next stage, or the other end of the tied embedding (first ↔ last). */
export type Neighbour = 'prev' | 'next' | 'tied';

/**
 * A stage's point-to-point links over its pipeline group (group rank = stage index, P ranks): activations go to
 * `next`, their gradients to `prev`, the tied embedding's gradient between the first and the last stage. Every message
 * is one Float32Array: `[ndim, d0 … d(ndim−1), values…]` (a tensor of any rank; sizes are exact in float32 below 2^24),
 * sent with the transport's tagged `send`/`recv` (threads: the buffer is transferred; tcp: one frame). Tags are
 * `<step>:<kind>:<micro-batch>` (`eval<id>:act:<i>` in evaluation). Errors: a lost or silent neighbour rejects with
 * the transport's PeerLostError / PeerTimeoutError naming its global rank; a malformed message is YuanError 'pipeline'.
 */
export class StageLinks {
  constructor(
    readonly group: ProcessGroup,
    readonly stage: number,
    readonly stages: number,
  ) {}

  /** The group rank of `which` (an error when this stage has no such neighbour). */
  private peer(which: Neighbour): number {
    const last = this.stages - 1;
    const r = which === 'prev' ? this.stage - 1 : which === 'next' ? this.stage + 1 : this.stage === 0 ? last : this.stage === last ? 0 : -1;
    if (r < 0 || r > last || r === this.stage) throw new YuanError('internal', `stage ${this.stage} of ${this.stages} has no ${which} neighbour`);
    return r;
  }

  /** Sends a copy of `t`'s values and shape (the backend owns the tensor's storage; the copy is transferred). */
  async send(which: Neighbour, tag: string, t: tf.Tensor): Promise<void> {
    const values = t.dataSync() as Float32Array;
    const msg = new Float32Array(1 + t.rank + values.length);
    msg[0] = t.rank;
    msg.set(t.shape, 1);
    msg.set(values, 1 + t.rank);
    await this.group.send(this.peer(which), msg, tag, { transfer: true });
  }

  /** The tensor `which` sent under `tag` (float32, its shape). */
  async recv(which: Neighbour, tag: string): Promise<tf.Tensor> {
    const msg = await this.group.recv(this.peer(which), tag);
    const rank = msg[0];
    const shape = Array.from(msg.subarray(1, 1 + rank));
    const size = shape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(rank) || msg.length !== 1 + rank + size) {
      throw new YuanError('pipeline', `stage ${this.stage}: message ${tag} from the ${which} stage has ${msg.length} values, not a tensor of shape [${shape.join(', ')}]`);
    }
    return tf.tensor(msg.subarray(1 + rank), shape, 'float32');
  }
}
