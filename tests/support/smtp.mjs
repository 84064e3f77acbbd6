// A real SMTP server for the Node suites: Debian's python3-aiosmtpd on a free port of 127.0.0.1,
// writing each mail it takes as JSON (smtp_sink.py: envelope recipients, subject, decoded text and
// HTML parts). `stop()` and `start()` again on the same port make an outage; `mails()` and
// `waitForMail()` read what arrived. Node built-ins only, like server.mjs.

import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const here = path.dirname(fileURLToPath(import.meta.url))

/** The system Python, which has aiosmtpd (a `python3` earlier on PATH may be another one). */
const PYTHON = process.env.WRENCHLINE_TEST_PYTHON || '/usr/bin/python3'

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Starts an SMTP server (unless `started: false`) and resolves `{port, url, start, stop,
 * mails, waitForMail, cleanup}`; `url` is what `serve --smtp-url` takes.
 */
export async function startSmtp({ started = true } = {}) {
  const port = await freePort()
  const dir = mkdtempSync(path.join(tmpdir(), 'wl-smtp-'))
  let child = null
  const smtp = {
    port,
    url: `smtp://127.0.0.1:${port}`,
    async start() {
      if (child) throw new Error('the SMTP server is already running')
      child = spawn(
        PYTHON,
        ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`, '-c', 'smtp_sink.JsonMailbox', dir],
        { env: { ...process.env, PYTHONPATH: here }, stdio: ['ignore', 'ignore', 'pipe'] },
      )
      let errors = ''
      child.stderr.on('data', (chunk) => (errors += chunk))
      const deadline = Date.now() + 15000
      while (!(await accepts(port))) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`aiosmtpd did not start on port ${port} (Debian's python3-aiosmtpd):\n${errors}`)
        }
        await sleep(50)
      }
    },
    async stop() {
      if (!child) return
      const done = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await done
      child = null
    },
    /** Every mail received so far, oldest first. */
    mails() {
      return readdirSync(dir)
        .filter((name) => name.endsWith('.json'))
        .sort()
        .map((name) => JSON.parse(readFileSync(path.join(dir, name), 'utf8')))
    },
    /** The first mail whose subject matches `pattern`, within `timeoutMs`. */
    async waitForMail(pattern, timeoutMs = 15000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = smtp.mails().find((m) => pattern.test(m.subject))
        if (found) return found
        if (Date.now() > deadline) {
          throw new Error(`no mail matching ${pattern}; received ${JSON.stringify(smtp.mails().map((m) => m.subject))}`)
        }
        await sleep(100)
      }
    },
    async cleanup() {
      await smtp.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
  if (started) await smtp.start()
  return smtp
}

/** The first link in a mail's text part that starts with `prefix`. */
export function mailLink(mail, prefix) {
  const link = mail.text.split(/\s+/).find((word) => word.startsWith(prefix))
  if (!link) throw new Error(`no link to ${prefix} in ${JSON.stringify(mail.text)}`)
  return link
}
