import { YuanError } from '@yuan/core';
import { copyTensorInto, tf } from '@yuan/tensor';
import type { ProcessGroup } from '@yuan/comm';

/**
 * A stage's point-to-point links over its pipeline group (group rank = stage index, P ranks), addressed by stage as
 * the schedule's instructions name them: activations go to the next stage, their gradients to the previous one, the
 * tied embedding's gradient between the first and the last stage. Every message
 * is one Float32Array: `[ndim, d0 … d(ndim−1), values…]` (a tensor of any rank; sizes are exact in float32 below 2^24),
 * sent with the transport's tagged `send`/`recv` (threads: the buffer is transferred; tcp: one frame). Tags are
 * `<step>.<try>:<kind>:<stage>:<micro-batch>` (`eval<id>:act:<stage>:<i>` in evaluation). Errors: a lost or silent neighbour rejects with
 * the transport's PeerLostError / PeerTimeoutError naming its global rank; a malformed message is YuanError 'pipeline'.
 */
export class StageLinks {
  constructor(
    readonly group: ProcessGroup,
    readonly stage: number,
    readonly stages: number,
  ) {}

  /** The group rank of stage `stage` (YuanError 'pipeline' unless it is another stage of the pipeline). */
  private peer(stage: number): number {
    if (!Number.isInteger(stage) || stage < 0 || stage >= this.stages || stage === this.stage) {
      throw new YuanError('pipeline', `stage ${this.stage} of ${this.stages} cannot exchange with stage ${stage}`);
    }
    return stage;
  }

  /** Sends a copy of `t`'s values and shape to stage `to` (the backend owns the tensor's storage; the copy is transferred). */
  async send(to: number, tag: string, t: tf.Tensor): Promise<void> {
    const msg = new Float32Array(1 + t.rank + t.size);
    msg[0] = t.rank;
    msg.set(t.shape, 1);
    copyTensorInto(t, msg, 1 + t.rank);
    await this.group.send(this.peer(to), msg, tag, { transfer: true });
  }

  /** The tensor stage `from` sent under `tag` (float32, its shape). */
  async recv(from: number, tag: string): Promise<tf.Tensor> {
    const msg = await this.group.recv(this.peer(from), tag);
    const rank = msg[0];
    const shape = Array.from(msg.subarray(1, 1 + rank));
    const size = shape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(rank) || msg.length !== 1 + rank + size) {
      throw new YuanError(
        'pipeline',
        `stage ${this.stage}: message ${tag} from stage ${from} has ${msg.length} values, not a tensor of shape [${shape.join(', ')}]`,
      );
    }
    return tf.tensor(msg.subarray(1 + rank), shape, 'float32');
  }
}
