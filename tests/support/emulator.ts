import { EC2Client } from "@aws-sdk/client-ec2";
import { ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import { CREDENTIALS, Emulator, motoConnection, useEmulator } from "../../rehearsal/emulator";
import { createClients } from "../../handler/aws";
import { createDeployHandler } from "../../handler/deploy";
import { HandlerSettings } from "../../handler/settings";
import { inMoto, LambdaOverrides, MotoStack } from "../../rehearsal/materialize";
import { REGION } from "../../rehearsal/program";

/** The shared emulator and clients straight to moto (not through the proxy), for setting up and asserting. */
export async function emulatorClients(): Promise<{ emulator: Emulator; ec2: EC2Client; elb: ElasticLoadBalancingV2Client }> {
    const emulator = await useEmulator();
    const direct = motoConnection(emulator, REGION);
    return { emulator, ec2: new EC2Client(direct), elb: new ElasticLoadBalancingV2Client(direct) };
}

/** An empty emulator and a stack that `pulumi up` will materialise in it. */
export async function freshStack(emulator: Emulator, overrides: LambdaOverrides = {}): Promise<MotoStack> {
    await emulator.reset();
    return inMoto(emulator, REGION, overrides);
}

/** The deploy function on the emulator's endpoint, built from the handler's code rather than the archive; its log lines go to `log`. */
export function emulatorDeployHandler(emulator: Emulator, settings: HandlerSettings, log: (line: string) => void = () => undefined) {
    return createDeployHandler(settings, { clients: createClients(settings.region, { endpoint: emulator.endpoint, credentials: CREDENTIALS }), log, metrics: () => undefined });
}

/** What Lambda's environment provides a function in the stack's region: credentials, and here the emulator's endpoint. */
export function lambdaEnvironment(emulator: Emulator): Record<string, string> {
    return {
        AWS_REGION: REGION,
        AWS_ENDPOINT_URL: emulator.endpoint,
        AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    };
}
