export * from './types';
export * from './storage';
export * from './raw-node';
