import { randomUUID } from "crypto";
import { VirtualClock } from "./clock";

/**
 * An SQS standard queue on the modelled clock: delay, visibility timeout, receive count and the
 * redrive to a dead-letter queue. (moto's queue keeps these on wall time, which the rehearsal
 * does not run on.)
 */

export interface QueuedMessage {
    messageId: string;
    body: string;
    sentAt: number;
    visibleAt: number;
    receiveCount: number;
}

export interface QueueConfig {
    arn: string;
    url: string;
    visibilityTimeoutS: number;
    /** Receives after which the message moves to the dead-letter queue; none: it stays. */
    maxReceiveCount?: number;
}

export class ModelledQueue {
    readonly messages: QueuedMessage[] = [];
    readonly deadLetters: QueuedMessage[] = [];
    private readonly listeners: (() => void)[] = [];

    constructor(
        private readonly clock: VirtualClock,
        readonly config: QueueConfig,
    ) {}

    /** Called whenever a message may have become visible. */
    onVisible(listener: () => void): void {
        this.listeners.push(listener);
    }

    send(body: string, delayS = 0): string {
        const message: QueuedMessage = { messageId: randomUUID(), body, sentAt: this.clock.now, visibleAt: this.clock.now + delayS, receiveCount: 0 };
        this.messages.push(message);
        this.clock.at(message.visibleAt, () => this.notify());
        return message.messageId;
    }

    visible(): QueuedMessage[] {
        return this.messages.filter((m) => m.visibleAt <= this.clock.now);
    }

    /**
     * Up to `max` visible messages, each hidden for the visibility timeout. A message received more
     * often than `maxReceiveCount` moves to the dead-letter queue instead (SQS redrive:
     * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html).
     */
    receive(max: number): QueuedMessage[] {
        const received: QueuedMessage[] = [];
        for (const message of this.visible()) {
            if (received.length === max) {
                break;
            }
            if (this.config.maxReceiveCount !== undefined && message.receiveCount >= this.config.maxReceiveCount) {
                this.delete(message.messageId);
                this.deadLetters.push(message);
                continue;
            }
            message.receiveCount++;
            message.visibleAt = this.clock.now + this.config.visibilityTimeoutS;
            this.clock.at(message.visibleAt, () => this.notify());
            received.push(message);
        }
        return received;
    }

    delete(messageId: string): void {
        const index = this.messages.findIndex((m) => m.messageId === messageId);
        if (index >= 0) {
            this.messages.splice(index, 1);
        }
    }

    private notify(): void {
        this.listeners.forEach((listener) => listener());
    }
}
