/** Sent as the User-Agent so the DID Optimizer's operators can tell which sync posted a call (kept equal to package.json by a test). */
export const VERSION = '0.1.0';
export const USER_AGENT = `vicidial-did-sync/${VERSION} (+https://github.com/vicidial-did-sync)`;
