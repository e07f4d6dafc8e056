import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, DomainSettings } from "./config";

/**
 * The service's own name: a DNS-validated ACM certificate for the HTTPS listener and a Route 53
 * alias to the load balancer. Only declared when `domainName` is set.
 */

export interface HostedDomain extends DomainSettings {
    hostedZoneId: string;
}

/** Finds the public hosted zone; runs before any resource is declared. */
export async function lookupHostedZone(domain: DomainSettings): Promise<HostedDomain> {
    try {
        const zone = await aws.route53.getZone({ name: domain.hostedZoneName, privateZone: false });
        return { ...domain, hostedZoneId: zone.zoneId };
    } catch (error) {
        throw new ConfigError(
            "hostedZoneName",
            `no public hosted zone ${domain.hostedZoneName} in this account (${(error as Error).message}); allowed: a public Route 53 zone that holds ${domain.domainName}`,
        );
    }
}

export interface DomainCertificateArgs {
    domain: HostedDomain;
}

/** An ACM certificate for the domain, validated through records in its hosted zone. */
export class DomainCertificate extends pulumi.ComponentResource {
    /** ARN of the certificate once ACM has validated it: listeners that use it wait for that. */
    public readonly certificateArn: pulumi.Output<string>;

    constructor(name: string, args: DomainCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:DomainCertificate", name, {}, opts);
        const { domainName, hostedZoneId } = args.domain;
        const certificate = new aws.acm.Certificate(name, {
            domainName,
            validationMethod: "DNS",
        }, { parent: this });
        // One name, so ACM asks for exactly one validation record.
        const option = certificate.domainValidationOptions[0];
        const validationRecord = new aws.route53.Record(`${name}-validation`, {
            zoneId: hostedZoneId,
            name: option.resourceRecordName,
            type: option.resourceRecordType,
            records: [option.resourceRecordValue],
            ttl: 60,
            allowOverwrite: true,
        }, { parent: this });
        const validation = new aws.acm.CertificateValidation(name, {
            certificateArn: certificate.arn,
            validationRecordFqdns: [validationRecord.fqdn],
        }, { parent: this });
        this.certificateArn = validation.certificateArn;
        this.registerOutputs({ certificateArn: this.certificateArn });
    }
}

export interface AliasRecordArgs {
    domain: HostedDomain;
    loadBalancer: aws.lb.LoadBalancer;
}

/** `domainName` → the load balancer, as a Route 53 alias that follows the ALB's health. */
export class AliasRecord extends pulumi.ComponentResource {
    public readonly fqdn: pulumi.Output<string>;

    constructor(name: string, args: AliasRecordArgs, opts?: pulumi.ComponentResourceOptions) {
        super("spot-availability:index:AliasRecord", name, {}, opts);
        const record = new aws.route53.Record(name, {
            zoneId: args.domain.hostedZoneId,
            name: args.domain.domainName,
            type: "A",
            aliases: [{
                name: args.loadBalancer.dnsName,
                zoneId: args.loadBalancer.zoneId,
                evaluateTargetHealth: true,
            }],
        }, { parent: this });
        this.fqdn = record.fqdn;
        this.registerOutputs({ fqdn: this.fqdn });
    }
}
