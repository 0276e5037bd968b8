// A real EventSource (the `eventsource` package, WHATWG semantics) following a Starcite SSE tail.
// Usage: node sse_follow.mjs <tail url> <events to read>
// Prints one JSON line per event ({"seq":..,"id":..}), per open ({"open":n}) and per error
// ({"error":..,"readyState":..}) on stdout, and exits 0 once it has read that many events.
// It never reconnects by itself: EventSource does, sending Last-Event-ID.
import {EventSource} from 'eventsource'

const [url, wanted] = [process.argv[2], Number(process.argv[3])]
const source = new EventSource(url)
let opens = 0
let read = 0
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n')

source.onopen = () => say({open: ++opens})
source.onerror = (event) => say({error: event.message ?? 'error', readyState: source.readyState})
source.onmessage = (event) => {
  say({seq: JSON.parse(event.data).seq, id: event.lastEventId})
  if (++read >= wanted) {
    source.close()
    process.exit(0)
  }
}
