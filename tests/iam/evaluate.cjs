// Evaluates IAM requests with @cloud-copilot/iam-simulate (test-only, AGPL, never shipped).
// stdin: a JSON array of {simulation, unsafe}; stdout: a JSON array of {decision, allowedBy, errors}.
// `unsafe` runs without input validation, which keeps context keys the checked mode drops
// (cognito-identity.amazonaws.com:sub, a policy variable of the browser's policy).
const { runSimulation, runUnsafeSimulation } = require('@cloud-copilot/iam-simulate')

function allowedBy(result) {
  const analysis = result && result.analysis
  const statements = (analysis && analysis.identityAnalysis && analysis.identityAnalysis.allowStatements) || []
  const resource = (analysis && analysis.resourceAnalysis && analysis.resourceAnalysis.allowStatements) || []
  return [...statements, ...resource].map((s) => (s.explain && s.explain.identifier) || s.policyId || '?')
}

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const out = []
  for (const { simulation, unsafe } of cases) {
    if (unsafe) {
      // It answers the decision alone, without the statements that made it.
      out.push({ decision: runUnsafeSimulation(simulation, {}), allowedBy: [], errors: null })
      continue
    }
    const response = await runSimulation(simulation, {})
    if (response.resultType === 'error') {
      out.push({ decision: 'Error', allowedBy: [], errors: response.errors })
    } else if (response.resultType === 'single') {
      out.push({ decision: response.overallResult, allowedBy: allowedBy(response.result), errors: null })
    } else {
      out.push({ decision: response.overallResult, allowedBy: [], errors: null })
    }
  }
  process.stdout.write(JSON.stringify(out))
}

main().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + '\n')
  process.exit(1)
})
