// Another Pulumi program built on the component. tsc compiles it with the project (npm test), and the README quotes it.
import { readConfig } from "../infra/config";
import { resolveServiceArgs, SpotWebService } from "../infra/service";

export = async () => {
    const service = new SpotWebService("shop", await resolveServiceArgs(readConfig()));
    return { url: service.url, instances: service.instances };
};
