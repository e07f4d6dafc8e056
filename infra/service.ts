import * as pulumi from "@pulumi/pulumi";
import { HandlerSettings } from "../handler/settings";
import { ServiceConfig } from "./config";
import { AliasRecord, DomainCertificate, HostedDomain, lookupHostedZone } from "./dns";
import { Drill } from "./drill";
import { DrillScope, FleetSummary } from "./fleetSummary";
import { InterruptionHandling } from "./interruptionHandling";
import { InstanceLaunchTemplate, lookupImage, MachineImage } from "./launchTemplate";
import { Listeners } from "./listeners";
import { DEREGISTRATION_DELAY_SECONDS, HEALTH_CHECK, LoadBalancer } from "./loadBalancer";
import { lookupNetwork, Network, NetworkPlan } from "./network";
import { Operations } from "./operations";

/** Validated config plus what had to be looked up in the account before declaring anything. */
export interface SpotWebServiceArgs {
    config: ServiceConfig;
    network: NetworkPlan;
    image: MachineImage;
    domain?: HostedDomain;
}

/**
 * Everything that must be read from the account (zones, subnets, the AMI, the hosted zone),
 * read before a single resource is declared, so that a bad value stops `pulumi up` with nothing
 * half created.
 */
export async function resolveServiceArgs(config: ServiceConfig): Promise<SpotWebServiceArgs> {
    const [network, image, domain] = await Promise.all([
        lookupNetwork(config.network, config.region),
        lookupImage(config.amiId, config.architecture),
        config.domain === undefined ? Promise.resolve(undefined) : lookupHostedZone(config.domain),
    ]);
    return { config, network, image, domain };
}

/**
 * A web application on spot instances, one or more per zone behind an Application Load
 * Balancer, kept at its count by a Lambda that answers interruption notices.
 */
export class SpotWebService extends pulumi.ComponentResource {
    public readonly url: pulumi.Output<string>;
    public readonly albDnsName: pulumi.Output<string>;
    public readonly targetGroupArn: pulumi.Output<string>;
    /** `Prometheus-A` (then `Prometheus-A-2` …) → instance id: the fleet as the last `pulumi up`'s deploy left it. */
    public readonly instances: pulumi.Output<Record<string, string>>;
    public readonly zones: string[];
    public readonly handlerName: pulumi.Output<string>;
    public readonly logGroupName: pulumi.Output<string>;
    public readonly dashboardName: pulumi.Output<string>;
    public readonly fleet: FleetSummary;
    /** Scope (`instance` or a zone) → FIS experiment template id; undefined unless `drill`. */
    public readonly drillTemplates?: pulumi.Output<Record<DrillScope, string>>;

    constructor(name: string, args: SpotWebServiceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:SpotWebService", name, {}, opts);
        const { config, domain } = args;

        const network = new Network(`${name}-network`, { plan: args.network }, { parent: this });
        const fleetZones = network.fleetSubnets.map((subnet) => subnet.zone);
        const certificate = domain === undefined ? undefined : new DomainCertificate(`${name}-certificate`, { domain }, { parent: this });
        // The load balancer spans every subnet of the network: `zones` only moves the fleet.
        const loadBalancer = new LoadBalancer(`${name}-lb`, {
            vpcId: network.vpcId,
            subnetIds: network.subnets.map((subnet) => subnet.subnetId),
            appPort: config.appPort,
            healthCheckPath: config.healthCheckPath,
            https: domain !== undefined,
        }, { parent: this });
        if (domain !== undefined) {
            new AliasRecord(`${name}-dns`, { domain, loadBalancer: loadBalancer.loadBalancer }, { parent: this });
        }

        const instances = new InstanceLaunchTemplate(`${name}-instances`, {
            stack: config.stack,
            instanceName: config.instanceName,
            vpcId: network.vpcId,
            image: args.image,
            keyName: config.keyName,
            sshCidr: config.sshCidr,
            appPort: config.appPort,
            userData: config.userData,
            loadBalancerSecurityGroupId: loadBalancer.securityGroup.id,
        }, { parent: this });

        const settings: pulumi.Output<Omit<HandlerSettings, "queueUrl">> = pulumi.output({
            stack: config.stack,
            region: config.region,
            instanceName: config.instanceName,
            instanceTypes: config.instanceTypes,
            instancesPerZone: config.instancesPerZone,
            subnetsByZone: pulumi.all(Object.fromEntries(network.fleetSubnets.map((subnet) => [subnet.zone, subnet.subnetId]))),
            launchTemplateId: instances.launchTemplate.id,
            launchTemplateVersion: instances.launchTemplate.latestVersion,
            securityGroupIds: [instances.securityGroup.id],
            targetGroupArn: loadBalancer.targetGroup.arn,
            targetGroup: {
                healthCheckIntervalSeconds: HEALTH_CHECK.intervalSeconds,
                healthyThreshold: HEALTH_CHECK.healthyThreshold,
                deregistrationDelaySeconds: DEREGISTRATION_DELAY_SECONDS,
            },
            spotProductDescription: config.spotProductDescription,
            spotMaxPrice: config.spotMaxPrice,
            onDemandFallback: config.onDemandFallback,
            replaceOnRebalance: config.replaceOnRebalance,
            drainWhen: config.drainWhen,
            release: config.release,
        });
        const handling = new InterruptionHandling(`${name}-handler`, {
            // Not the load balancer component: the listeners follow the deploy, not precede it.
            fleetUses: [network, instances, loadBalancer.securityGroup, loadBalancer.targetGroup],
            settings,
            launchTemplateArn: instances.launchTemplate.arn,
            instanceRoleArn: instances.role.arn,
            imageParameter: args.image.ssmParameter,
            keyName: config.keyName,
            reconcileMinutes: config.reconcileMinutes,
            logRetentionDays: config.logRetentionDays,
        }, { parent: this });
        // Named as the load balancer component, whose children the listeners were: they keep their names.
        new Listeners(`${name}-lb`, {
            loadBalancer: loadBalancer.loadBalancer,
            targetGroup: loadBalancer.targetGroup,
            certificateArn: certificate?.certificateArn,
            deploy: handling.deploy.invocation,
            formerParent: loadBalancer,
        }, { parent: this });

        const operations = new Operations(`${name}-operations`, {
            stack: config.stack,
            region: config.region,
            zones: fleetZones,
            instancesPerZone: config.instancesPerZone,
            reconcileMinutes: config.reconcileMinutes,
            deadLetterQueueName: handling.deadLetterQueue.name,
            eventQueueName: handling.eventQueue.name,
            alarmTopicArn: config.alarmTopicArn,
        }, { parent: this });

        const drill = config.drill
            ? new Drill(`${name}-drill`, { stack: config.stack, zones: fleetZones }, { parent: this })
            : undefined;

        this.albDnsName = loadBalancer.loadBalancer.dnsName;
        this.url = domain === undefined ? pulumi.interpolate`http://${this.albDnsName}` : pulumi.output(`https://${domain.domainName}`);
        this.targetGroupArn = loadBalancer.targetGroup.arn;
        this.instances = handling.deploy.instances;
        this.zones = fleetZones;
        this.handlerName = handling.function.name;
        this.logGroupName = handling.logGroup.name;
        this.dashboardName = operations.dashboardName;
        this.fleet = {
            region: config.region,
            stack: config.stack,
            instanceName: config.instanceName,
            zones: this.zones,
            instancesPerZone: config.instancesPerZone,
            instanceTypes: config.instanceTypes,
            spotProductDescription: config.spotProductDescription,
        };
        this.drillTemplates = drill?.templates;
        this.registerOutputs({
            url: this.url,
            albDnsName: this.albDnsName,
            targetGroupArn: this.targetGroupArn,
            instances: this.instances,
            zones: this.zones,
            handlerName: this.handlerName,
            logGroupName: this.logGroupName,
            dashboardName: this.dashboardName,
            fleet: this.fleet,
            drillTemplates: this.drillTemplates,
        });
    }
}
