/** @yuan/eval: evaluators, the HumanEval sandbox, the OpenAI-compatible endpoint adapter, result tables. */
export {
  isolationNote,
  Sandbox,
  type SandboxOptions,
  type SandboxResult,
  type RunOptions,
  type Isolation,
} from './sandbox/sandbox.js';
export { DEFAULT_LIMITS, type SandboxLimits } from './sandbox/limits.js';
export { passAtK } from './metrics/pass-at-k.js';
export { majorityVote, majorityAtK } from './metrics/majority.js';
export { extractNumericAnswer, gsm8kGold, normalizeNumber, sameNumber } from './extract/number.js';
export { extractChoice } from './extract/choice.js';
export { extractCloze, clozeMatches } from './extract/cloze.js';
export { humanEvalEvaluator, loadHumanEval, type HumanEvalOptions } from './tasks/humaneval.js';
export {
  HUMANEVAL_MODULE,
  humanEvalProgram,
  humanEvalVerdict,
  type HumanEvalProblem,
} from './tasks/humaneval-program.js';
export {
  gsm8kEvaluator,
  svampEvaluator,
  loadGsm8k,
  loadSvamp,
  YUAN_GSM8K_INSTRUCTION,
  type Gsm8kOptions,
} from './tasks/gsm8k.js';
export {
  mathqaEvaluator,
  mathclozeEvaluator,
  truthfulQaEvaluator,
  YUAN_MATHQA_INSTRUCTION,
  type GaokaoMathOptions,
  type TruthfulQaOptions,
} from './tasks/yuan-tasks.js';
export { withYuanPrompts } from './tasks/humaneval.js';
export { type Protocol } from './tasks/protocol.js';
export {
  loadSepFile,
  loadPythonDictLines,
  fromYuanText,
  toYuanText,
  YUAN_DIR,
  type SepRecord,
  type BadLine,
  type Loaded,
} from './yuan/files.js';
export { scoreYuanGsm8k, type YuanGsm8kVerdict } from './yuan/gsm8k-score.js';
export { extractYuanChoice, mathqaGold } from './yuan/mathqa-score.js';
export { mathClozeEqual, extractYuanCloze, normalizeLatex } from './yuan/math-compare.js';
export { yuanHumanEvalCode, yuanCheckProgram } from './yuan/humaneval-yuan.js';
export {
  loadTruthfulZh,
  loadTruthfulEn,
  truthfulZhPrompt,
  scoreTruthfulZh,
  seededPermutation,
  TRUTHFULQA_ZH_INSTRUCTION,
  type TruthfulZh,
  type TruthfulEn,
} from './yuan/truthfulqa-data.js';
export { testGenerationPrompt, parseGeneratedTests, TESTGEN_INSTRUCTION } from './yuan/testgen.js';
export { PAPER_RESULTS } from './yuan/paper.js';
export { mathPrompt, type MathProblem, type MathOptions } from './tasks/math-word.js';
export { agiEvalEvaluator, loadAgiEval, AGIEVAL_SUBSETS, type AgiOptions, type AgiQuestion } from './tasks/agieval.js';
export { perplexityEvaluator, chunkText, type PerplexityOptions } from './tasks/perplexity.js';
export {
  runEvaluation,
  getEvaluator,
  type RunEvaluationOptions,
  type RunEvaluationResult,
} from './run/run-evaluation.js';
export { readSamplesFile } from './run/samples-file.js';
export { formatResultTable } from './run/table.js';
export { defaultDataDir } from './data/default-dir.js';
export { OpenAIEndpointAdapter, openAIEndpointPlugin, type EndpointOptions } from './adapters/openai-endpoint.js';
import { evalPlugins } from './tasks/registry.js';
/** The plugins this package provides (what `yuan` registers from it): the evaluators and the `openai` model adapter. */
export const plugins = evalPlugins();
