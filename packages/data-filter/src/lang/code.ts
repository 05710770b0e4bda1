const KEYWORD_START =
  /^(def|class|import|from\s+\S+\s+import|return|elif|else:|try:|except|finally:|raise|yield|lambda|function|const|let|var|public|private|protected|static|#include|#define|#ifn?def|#endif|package|fn|func|struct|impl|enum|interface|namespace|using|module|export|async|await|pub|template|typedef|switch|case\s.*:|break;|continue;|throw)\b/;
const CODE_END = /(?:[;{}]|\)\s*:|=>|\*\/|"""|''')$/;
const ASSIGNMENT = /^[A-Za-z_$][\w$.[\]]*\s*(?:[-+*/%|&^]|<<|>>)?=\s*[^=\s]/;
const CALL = /^[A-Za-z_$][\w$.]*\([^()]*\)[;,]?$/;
const CLOSERS = /^[}\])]+[;,)]*$/;
const CODE_LAST = new Set([...';{}()[]:,>/\'"'].map((c) => c.charCodeAt(0)));
const CONTROL = /^(if|for|while)\b.*[:{)]$/;

/** How much one non-blank line looks like source code: 1 for a code construct, 0.5 for indented text, else 0. */
function lineEvidence(line: string): number {
  const t = line.trim();
  const last = t.charCodeAt(t.length - 1);
  // Fast path for prose: no '=', no code-like last character, not indented: only a leading keyword can make it code.
  if (
    !t.includes('=') &&
    !CODE_LAST.has(last) &&
    line.charCodeAt(0) !== 32 &&
    line.charCodeAt(0) !== 9 &&
    !t.startsWith('/')
  ) {
    return KEYWORD_START.test(t) ? 1 : 0;
  }
  if (t.startsWith('>>> ') || t.startsWith('//') || t.startsWith('/*')) return 1;
  if (
    KEYWORD_START.test(t) ||
    CONTROL.test(t) ||
    CODE_END.test(t) ||
    ASSIGNMENT.test(t) ||
    CALL.test(t) ||
    CLOSERS.test(t)
  )
    return 1;
  if (/^(\t| {2,})\S/.test(line)) return 0.5;
  return 0;
}

/** Share of a text's non-blank lines that look like source code, in [0, 1] (0 for fewer than 3 such lines). */
export function codeScore(text: string, maxLines = 400): number {
  let lines = 0;
  let evidence = 0;
  let start = 0;
  while (start <= text.length && lines < maxLines) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    if (line.trim() !== '') {
      lines++;
      evidence += lineEvidence(line);
    }
    start = end + 1;
  }
  return lines < 3 ? 0 : evidence / lines;
}
