// Node 20 lacks Promise.withResolvers (ES2024), which newer transitive packages of js-ipfs call.
// Loaded with NODE_OPTIONS=--require <this file> before jsipfs starts.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
