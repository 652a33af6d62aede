// Ask by voice: record with the microphone (MediaRecorder, WebM/Opus where it can), send it to
// POST /ask/voice, show the transcript and the answer. Says so when the server has no voice
// (GET /capabilities).
import { useEffect, useRef, useState } from "react";
import { api, can } from "@/lib/api";
import { capabilities } from "@/lib/capabilities";
import { useMe } from "@/lib/session";
import type { VoiceAnswer } from "@/lib/review";
import SearchCitations from "./SearchCitations";
import styles from "@/styles/search.module.css";

const MAX_MS = 30_000;
type Avail = "checking" | "yes" | "no" | "denied";

function mimeType(): string {
  for (const t of ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/ogg"]) {
    if (typeof MediaRecorder !== "undefined" && MediaRecorder.isTypeSupported?.(t)) return t;
  }
  return "";
}

function micProblem(err: unknown): string {
  const name = (err as Error)?.name ?? "";
  if (name === "NotAllowedError" || name === "SecurityError")
    return "The browser refused the microphone. Allow this site to use it (the icon in the address bar) and try again.";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone was found on this device.";
  if (name === "NotReadableError") return "The microphone is in use by another application.";
  return `The microphone cannot be used: ${(err as Error)?.message || name || "unknown error"}.`;
}

export default function SearchVoice() {
  const [avail, setAvail] = useState<Avail>("checking");
  const [recording, setRecording] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<VoiceAnswer | null>(null);
  const recorder = useRef<MediaRecorder | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  // Whether voice runs here, from the server's capabilities; asking needs events:read.
  const me = useMe();
  useEffect(() => {
    if (!me) return;
    if (!can(me, "events:read")) {
      setAvail("denied");
      return;
    }
    let live = true;
    capabilities().then((c) => {
      // null: the server cannot say (older or unreachable); offer it, a 404 on sending says no.
      if (live) setAvail(c && !c.voice ? "no" : "yes");
    });
    return () => {
      live = false;
    };
  }, [me]);

  useEffect(() => {
    return () => {
      if (timer.current) clearTimeout(timer.current);
      recorder.current?.stream.getTracks().forEach((t) => t.stop());
    };
  }, []);

  const send = async (blob: Blob) => {
    setBusy(true);
    const form = new FormData();
    const ext = blob.type.includes("ogg") ? "ogg" : "webm";
    form.append("audio", blob, `question.${ext}`);
    const r = await api<VoiceAnswer>("POST", "/ask/voice", form);
    setBusy(false);
    if (r.ok) setResult(r.data);
    else if (r.status === 404) {
      setAvail("no");
    } else if (r.status === 422) setError(`The recording could not be used: ${r.error}.`);
    else if (r.status === 503) setError(`Voice is not available right now: ${r.error}.`);
    else setError(`The spoken question failed: ${r.error}.`);
  };

  const start = async () => {
    setError(null);
    setResult(null);
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
      setError("This browser cannot record here (the microphone needs a secure, HTTPS page and a recent browser).");
      return;
    }
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      setError(micProblem(err));
      return;
    }
    const type = mimeType();
    const rec = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
    const chunks: Blob[] = [];
    rec.ondataavailable = (e) => {
      if (e.data.size) chunks.push(e.data);
    };
    rec.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      setRecording(false);
      if (timer.current) clearTimeout(timer.current);
      const blob = new Blob(chunks, { type: rec.mimeType || type || "audio/webm" });
      if (blob.size) void send(blob);
      else setError("Nothing was recorded.");
    };
    recorder.current = rec;
    rec.start();
    setRecording(true);
    timer.current = setTimeout(() => rec.state === "recording" && rec.stop(), MAX_MS);
  };

  const stop = () => {
    if (recorder.current?.state === "recording") recorder.current.stop();
  };

  if (avail === "checking") return null;
  if (avail !== "yes") {
    return (
      <p className="muted" data-testid="voice-off">
        {avail === "denied" ? "Asking by voice is not allowed for your role." : "Asking by voice is not enabled on this server."}
      </p>
    );
  }
  return (
    <section aria-labelledby="voice-h" className={`panel ${styles.voice}`}>
      <h2 id="voice-h">Ask by voice</h2>
      <div className="row">
        <button
          type="button"
          className={recording ? "danger" : undefined}
          aria-pressed={recording}
          onClick={recording ? stop : start}
          disabled={busy}
          data-testid="mic"
        >
          {recording ? "Stop recording" : busy ? "Listening to it…" : "Record a question"}
        </button>
        <span className="muted" role="status" aria-live="polite">
          {recording ? "Recording… speak now (30 s at most)." : busy ? "Transcribing and answering…" : ""}
        </span>
      </div>
      {error ? <p className="notice notice-error" role="alert" data-testid="voice-error">{error}</p> : null}
      {result ? (
        <div aria-live="polite" data-testid="voice-answer">
          <p>
            <strong>You asked:</strong> <q data-testid="transcript">{result.transcript.text}</q>
          </p>
          <p className={styles.answerText}>{result.answer}</p>
          <SearchCitations citations={result.citations} />
        </div>
      ) : null}
    </section>
  );
}
