import { readConfig } from "./infra/config";
import { resolveServiceArgs, SpotWebService } from "./infra/service";

// Config is read, validated and looked up in full before the first resource is declared.
export = async () => {
    const service = new SpotWebService("spot", await resolveServiceArgs(readConfig()));
    return {
        url: service.url,
        albDnsName: service.albDnsName,
        targetGroupArn: service.targetGroupArn,
        instances: service.instances,
        zones: service.zones,
        handlerName: service.handlerName,
        logGroupName: service.logGroupName,
        dashboardName: service.dashboardName,
        fleet: service.fleet,
        // Only with `drill: true`.
        ...(service.drillTemplates === undefined ? {} : { drillTemplates: service.drillTemplates }),
    };
};
