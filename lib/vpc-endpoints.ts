import { Fn, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { PropsError } from './validation';

export interface SyncVpcEndpointsProps {
  readonly vpc: ec2.IVpc;
  /** The function's subnets: the interface endpoint gets one network interface in each. */
  readonly subnets: ec2.ISubnet[];
  /** Create the endpoints that are not given by id below. */
  readonly create: boolean;
  /**
   * An existing Secrets Manager interface endpoint to use instead of creating one.
   * @default - created when `create` is true
   */
  readonly secretsManagerEndpointId?: string;
  /**
   * Its security group: the stack lets the function in.
   * @default - that group must admit the function already
   */
  readonly secretsManagerEndpointSecurityGroupId?: string;
  /**
   * Its DNS name, when it has private DNS off (the function is then pointed at it explicitly).
   * @default - the endpoint has private DNS on
   */
  readonly secretsManagerEndpointDns?: string;
  /**
   * An existing DynamoDB gateway endpoint on the function's route tables (a second one could not be added).
   * @default - created when `create` is true
   */
  readonly dynamoDbEndpointId?: string;
  /** The only secrets a created Secrets Manager endpoint lets through. */
  readonly secretArns: readonly string[];
}

/**
 * VPC endpoints for Secrets Manager and DynamoDB, reused when the VPC has them, otherwise created so that
 * no other client of the customer's VPC notices:
 *
 * - the Secrets Manager interface endpoint is created with private DNS **off**: the regional hostname
 *   keeps resolving as before for everyone else (and a VPC that already has such an endpoint with private
 *   DNS deploys without a DNS conflict), and the function is pointed at the endpoint's own name through
 *   SECRETS_MANAGER_ENDPOINT. Its security group admits the function only, and its policy lets through
 *   reads of this stack's secrets only.
 * - the DynamoDB gateway endpoint keeps the default full-access policy, because it carries the DynamoDB
 *   traffic of every subnet behind the given route tables, not only the function's.
 */
export class SyncVpcEndpoints extends Construct {
  /** A Secrets Manager endpoint whose security group is known, for the function's egress rule. */
  readonly secretsManager?: ec2.IInterfaceVpcEndpoint;
  /** `https://<endpoint DNS name>` when the function must be pointed at the endpoint (private DNS off). */
  readonly secretsManagerUrl?: string;
  /** True when Secrets Manager's regional hostname resolves to an endpoint in the VPC (private DNS on). */
  readonly secretsManagerPrivateDns: boolean;

  constructor(scope: Construct, id: string, props: SyncVpcEndpointsProps) {
    super(scope, id);
    for (const prop of ['secretsManagerEndpointSecurityGroupId', 'secretsManagerEndpointDns'] as const) {
      if (props[prop] && !props.secretsManagerEndpointId) {
        throw new PropsError(this, prop, 'describes an existing endpoint: set secretsManagerEndpointId too');
      }
    }

    if (props.secretsManagerEndpointId) {
      if (props.secretsManagerEndpointSecurityGroupId) {
        this.secretsManager = ec2.InterfaceVpcEndpoint.fromInterfaceVpcEndpointAttributes(
          this,
          'SecretsManager',
          {
            vpcEndpointId: props.secretsManagerEndpointId,
            port: 443,
            securityGroups: [
              ec2.SecurityGroup.fromSecurityGroupId(
                this,
                'SecretsManagerSecurityGroup',
                props.secretsManagerEndpointSecurityGroupId,
              ),
            ],
          },
        );
      }
      this.secretsManagerUrl = props.secretsManagerEndpointDns
        ? `https://${props.secretsManagerEndpointDns}`
        : undefined;
      this.secretsManagerPrivateDns = !props.secretsManagerEndpointDns;
    } else if (props.create) {
      const endpoint = new ec2.InterfaceVpcEndpoint(this, 'SecretsManager', {
        vpc: props.vpc,
        service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        subnets: { subnets: props.subnets },
        privateDnsEnabled: false,
        // Only the function may connect (the default would open it to the whole VPC CIDR).
        open: false,
      });
      endpoint.addToPolicy(
        new iam.PolicyStatement({
          sid: 'ReadThisStacksSecrets',
          principals: [new iam.AnyPrincipal()],
          actions: ['secretsmanager:GetSecretValue'],
          resources: [...props.secretArns],
          conditions: { StringEquals: { 'aws:PrincipalAccount': Stack.of(this).account } },
        }),
      );
      this.secretsManager = endpoint;
      // DnsEntries are "<hosted zone id>:<name>"; the first is the regional name, valid in every zone.
      const regional = Fn.select(1, Fn.split(':', Fn.select(0, endpoint.vpcEndpointDnsEntries)));
      this.secretsManagerUrl = `https://${regional}`;
      this.secretsManagerPrivateDns = false;
    } else {
      this.secretsManagerPrivateDns = false;
    }

    if (props.create && !props.dynamoDbEndpointId) {
      new ec2.GatewayVpcEndpoint(this, 'DynamoDb', {
        vpc: props.vpc,
        service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
        subnets: [{ subnets: props.subnets }],
      });
    }
  }
}
