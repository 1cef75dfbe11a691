/**
 * Which local process may register for which VIP on the agent's app socket.
 * The rule (peer credentials by SO_PEERCRED, as on the LB's API socket):
 *   - uid 0 may register for any VIP:port;
 *   - any other uid only for a VIP:port the configuration lists it under
 *     (`apps: { "198.19.0.1:80": [1000] }`, flag --app VIP:PORT=UID[,UID]).
 * A registered app receives live client connections with their first bytes,
 * so a uid not named by the operator gets none, whatever its socket access.
 * Pure.
 */
export type AppRules = Readonly<Record<string, readonly number[]>>;

export function mayRegister(uid: number, vip: string, rules: AppRules): boolean {
  if (uid === 0) return true;
  return (rules[vip] ?? []).includes(uid);
}
