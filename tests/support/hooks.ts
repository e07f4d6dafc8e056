import { stopEmulator } from "../../rehearsal/emulator";

/** Mocha root hooks: the shared emulator stops once every test has run. */
export const mochaHooks = {
    async afterAll(): Promise<void> {
        await stopEmulator();
    },
};
